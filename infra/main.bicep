// Hire provisioning on Azure: `azd up` deploys this into a new resource group.
// README, "Deploy to Azure", explains every parameter, role and alert.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Azure region of every new resource (Flex Consumption must be offered there).')
param location string

@description('The partner\'s Entra tenant id (PARTNER_TENANT_ID): the token endpoint of the App+User credentials.')
param partnerTenantId string

@description('HTTP intake: Entra ID access (App Service authentication, app roles) instead of function keys.')
param intakeEntraAuth bool = false
@description('HTTP intake with Entra ID: application (client) id of the API app registration.')
param intakeApiClientId string = ''
@description('HTTP intake with Entra ID: application (client) id of the HR system, the only caller.')
param intakeHrClientId string = ''

// ---- Function settings (CONTRACT section 4); the defaults are the contract's. ----
param requestQueueName string = 'user-create-requests'
param resultQueueName string = 'user-create-results'
param hireLedgerTable string = 'hireledger'
param upnTemplate string = '{firstName}.{lastName}'
param appIdSecretName string = 'partner-center-app-id'
param appSecretSecretName string = 'partner-center-app-secret'
param refreshTokenSecretName string = 'partner-center-refresh-token'
param partnerCenterBaseUrl string = 'https://api.partnercenter.microsoft.com'
// The cloud's own sign-in endpoint (https://login.microsoftonline.com/ in the public cloud), not
// a hard-coded host; the function strips the trailing slash.
param entraAuthorityHost string = environment().authentication.loginEndpoint
@description('How a UPN\'s holder is found (UPN_LOOKUP): graph, partner-center, or auto (Graph where the customer has consented, else the user list).')
@allowed(['auto', 'graph', 'partner-center'])
param upnLookup string = 'auto'
@description('Microsoft Graph, without /v1.0 (GRAPH_BASE_URL).')
param graphBaseUrl string = 'https://graph.microsoft.com'

@minValue(1)
@maxValue(365)
param initialPasswordTtlDays int = 7

@description('How long a delivery\'s claim on a hire lasts, in seconds (HIRE_CLAIM_SECONDS).')
@minValue(5)
@maxValue(540)
param hireClaimSeconds int = 240

// ---- Reuse instead of create. Empty names create new resources in the new group. ----
@description('An existing storage account for the queues, the ledger table and the deployment package (shared keys should be off).')
param existingStorageAccountName string = ''
@description('Its resource group; empty means the new resource group.')
param existingStorageAccountResourceGroup string = ''
@description('An existing vault (RBAC model) holding the App+User credentials.')
param existingKeyVaultName string = ''
param existingKeyVaultResourceGroup string = ''
@description('An existing vault (RBAC model) for initial passwords; empty creates a separate one.')
param existingPasswordVaultName string = ''
param existingPasswordVaultResourceGroup string = ''

@description('Replication of a new storage account.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGZRS'])
param storageSkuName string = 'Standard_ZRS'

@description('Seeds the names of new vaults (VAULT_NAME_SEED; azure.yaml\'s hooks set it for a new environment and renew it after azd down). Purge protection keeps a deleted vault\'s name for 90 days, so a new seed gives azd up after azd down free names; empty keeps the names of deployments made before the seed.')
param vaultNameSeed string = ''

// ---- Scale: total concurrency = maximumInstanceCount x (batchSize + newBatchThreshold). ----
// README, "Concurrency and Partner Center throttling", has the reasoning behind the defaults.
@minValue(1)
@maxValue(10)
param maximumInstanceCount int = 1
@minValue(1)
@maxValue(32)
param queueBatchSize int = 8
@minValue(0)
@maxValue(32)
param queueNewBatchThreshold int = 4
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

// The code needs Python 3.11 or newer (datetime.UTC, enum.StrEnum).
@allowed(['3.11', '3.12', '3.13'])
param pythonVersion string = '3.11'

// ---- Alerts and operators ----
@description('E-mail addresses the alerts go to, comma-separated; none creates the alerts without notifications.')
param alertEmailAddresses string = ''
@minValue(1)
@maxValue(100)
@description('Alert when more than this share of outcomes in 30 minutes are rejected or failed.')
param failureRateThresholdPercent int = 20
@minValue(1)
@description('Alert when the storage account\'s queues together hold more messages than this for an hour.')
param queueBacklogThreshold int = 50
@description('Object id of an Entra group of operators who run poison-queue (optional).')
param operatorsPrincipalId string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
// The sign-in host without its trailing slash (environment() ends it with one): the function
// and the token issuer App Service checks both want https://<host>.
var entraAuthority = endsWith(entraAuthorityHost, '/') ? substring(entraAuthorityHost, 0, length(entraAuthorityHost) - 1) : entraAuthorityHost
// Vaults only: a vault deleted with purge protection keeps its name for its retention period.
var vaultToken = empty(vaultNameSeed) ? resourceToken : toLower(uniqueString(subscription().id, environmentName, location, vaultNameSeed))
var tags = { 'azd-env-name': environmentName }
var resourceGroupName = 'rg-${environmentName}'
var newStorage = empty(existingStorageAccountName)
var newKeyVault = empty(existingKeyVaultName)
var newPasswordVault = empty(existingPasswordVaultName)
var storageAccountName = newStorage ? 'st${resourceToken}' : existingStorageAccountName
var storageResourceGroup = newStorage || empty(existingStorageAccountResourceGroup) ? resourceGroupName : existingStorageAccountResourceGroup
var keyVaultName = newKeyVault ? 'kv-${vaultToken}' : existingKeyVaultName
var keyVaultResourceGroup = newKeyVault || empty(existingKeyVaultResourceGroup) ? resourceGroupName : existingKeyVaultResourceGroup
var passwordVaultName = newPasswordVault ? 'kvpw-${vaultToken}' : existingPasswordVaultName
var passwordVaultResourceGroup = newPasswordVault || empty(existingPasswordVaultResourceGroup) ? resourceGroupName : existingPasswordVaultResourceGroup

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module customRoles 'modules/custom-roles.bicep' = {
  name: 'custom-roles-${resourceToken}'
  params: {
    resourceToken: resourceToken
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    resourceToken: resourceToken
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module storageAccount 'modules/storage-account.bicep' = if (newStorage) {
  name: 'storage-account'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSkuName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module storage 'modules/storage-data.bicep' = {
  name: 'storage-data'
  scope: resourceGroup(storageResourceGroup)
  dependsOn: [rg, storageAccount]
  params: {
    accountName: storageAccountName
    requestQueueName: requestQueueName
    resultQueueName: resultQueueName
    hireLedgerTable: hireLedgerTable
    deploymentContainerName: 'app-package-${resourceToken}'
    principalId: identity.outputs.principalId
    operatorsPrincipalId: operatorsPrincipalId
    queueMessageProcessorRoleId: customRoles.outputs.queueMessageProcessorRoleId
    ledgerWriterRoleId: customRoles.outputs.ledgerWriterRoleId
  }
}

module keyVault 'modules/key-vault.bicep' = if (newKeyVault) {
  name: 'key-vault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module passwordVault 'modules/key-vault.bicep' = if (newPasswordVault) {
  name: 'password-vault'
  scope: rg
  params: {
    name: passwordVaultName
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module vaultAccess 'modules/vault-access.bicep' = {
  name: 'vault-access'
  scope: resourceGroup(keyVaultResourceGroup)
  dependsOn: [rg, keyVault]
  params: {
    vaultName: keyVaultName
    principalId: identity.outputs.principalId
    secretReaderWriterRoleId: customRoles.outputs.secretReaderWriterRoleId
  }
}

module passwordVaultAccess 'modules/password-vault-access.bicep' = {
  name: 'password-vault-access'
  scope: resourceGroup(passwordVaultResourceGroup)
  dependsOn: [rg, passwordVault]
  params: {
    vaultName: passwordVaultName
    principalId: identity.outputs.principalId
    secretReaderWriterRoleId: customRoles.outputs.secretReaderWriterRoleId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  // The roles must exist before the host starts, or its first minutes fail with 403s: the
  // settings below read outputs of storage, vaultAccess and passwordVaultAccess, which makes
  // each of them a dependency without a dependsOn.
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storage: storage.outputs.endpoints
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    queueBatchSize: queueBatchSize
    queueNewBatchThreshold: queueNewBatchThreshold
    settings: {
      REQUEST_QUEUE_NAME: requestQueueName
      RESULT_QUEUE_NAME: resultQueueName
      HIRE_LEDGER_TABLE: hireLedgerTable
      UPN_TEMPLATE: upnTemplate
      KEY_VAULT_URL: vaultAccess.outputs.vaultUri
      INITIAL_PASSWORD_VAULT_URL: passwordVaultAccess.outputs.vaultUri
      INITIAL_PASSWORD_TTL_DAYS: string(initialPasswordTtlDays)
      HIRE_CLAIM_SECONDS: string(hireClaimSeconds)
      PARTNER_TENANT_ID: partnerTenantId
      PARTNER_CENTER_APP_ID_SECRET: appIdSecretName
      PARTNER_CENTER_APP_SECRET_SECRET: appSecretSecretName
      PARTNER_CENTER_REFRESH_TOKEN_SECRET: refreshTokenSecretName
      PARTNER_CENTER_BASE_URL: partnerCenterBaseUrl
      ENTRA_AUTHORITY_HOST: entraAuthority
      UPN_LOOKUP: upnLookup
      GRAPH_BASE_URL: graphBaseUrl
      // HTTP intake access (shared/service/intake.py): keys per route, or Entra ID app roles.
      HIRES_HTTP_AUTH: intakeEntraAuth ? 'entra' : 'function-key'
      HIRES_HTTP_ALLOWED_CLIENT_IDS: intakeHrClientId
      // The service's name on every span, metric and log record (shared/adapters/telemetry.py).
      OTEL_SERVICE_NAME: 'hire-provisioning'
      // The SDKs' own HTTP logging stays at WARNING (shared/logs.py); INFO or DEBUG to debug.
      SDK_LOG_LEVEL: 'WARNING'
    }
  }
}

// HTTP intake: Entra ID access instead of function keys (docs/http-intake.md).
module intakeAuth 'modules/intake-auth.bicep' = {
  name: 'intake-auth'
  scope: rg
  params: {
    appName: functionApp.outputs.name
    enabled: intakeEntraAuth
    tenantId: partnerTenantId
    apiClientId: intakeApiClientId
    hrClientId: intakeHrClientId
    entraAuthorityHost: entraAuthority
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    resourceToken: resourceToken
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmailAddresses: alertEmailAddresses
    failureRateThresholdPercent: failureRateThresholdPercent
    poisonQueueName: '${requestQueueName}-poison'
    decisions: monitoring.outputs.decisionsQuery
    storageAccountId: resourceId(subscription().subscriptionId, storageResourceGroup, 'Microsoft.Storage/storageAccounts', storageAccountName)
    functionAppId: functionApp.outputs.id
    queueBacklogThreshold: queueBacklogThreshold
  }
}

output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storageAccountName
output AZURE_KEY_VAULT_NAME string = keyVaultName
output VAULT_NAME_SEED string = vaultNameSeed
output AZURE_PASSWORD_VAULT_NAME string = passwordVaultName
output AZURE_QUEUE_SERVICE_URI string = storage.outputs.endpoints.queue
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output TOTAL_CONCURRENCY int = maximumInstanceCount * (queueBatchSize + queueNewBatchThreshold)
