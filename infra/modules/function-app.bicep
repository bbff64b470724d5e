// The Flex Consumption plan and the function app (Linux, Python). Every setting the function
// reads (CONTRACT section 4) is set here; storage is reached with the managed identity, so no
// connection string or key is ever an app setting.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
@description('Service endpoints of the storage account: queue, table, blob.')
param storage object
param deploymentContainerUrl string
param appInsightsConnectionString string
param pythonVersion string
param maximumInstanceCount int
param instanceMemoryMB int
param queueBatchSize int
param queueNewBatchThreshold int
@description('The function\'s own settings, by name (main.bicep).')
param settings object

// What one instance runs at once: the host takes up to batchSize + newBatchThreshold messages.
var perInstanceConcurrency = queueBatchSize + queueNewBatchThreshold

var appSettings = union(settings, {
  // Identity-based AzureWebJobsStorage: the trigger and output bindings and the function's
  // own poison copies (queues), the host's keys and locks (blobs). No __tableServiceUri: that
  // would switch on the host's own diagnostic tables, which need table rights account-wide.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__queueServiceUri: storage.queue
  AzureWebJobsStorage__blobServiceUri: storage.blob
  // The hire ledger's table endpoint, a setting of its own (shared/settings.py).
  HIRE_LEDGER_TABLE_SERVICE_URI: storage.table
  // DefaultAzureCredential (Key Vault, poison copies, ledger) picks this user-assigned identity.
  KEY_VAULT_CREDENTIAL: 'default'
  AZURE_CLIENT_ID: identityClientId
  // Telemetry with Entra ID: the connection string names the resource, the identity signs.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Every decision line must arrive: the alerts and saved queries count them, and adaptive
  // sampling (on by default, traces included) would drop some under load.
  AzureFunctionsJobHost__logging__applicationInsights__samplingSettings__isEnabled: 'false'
  // The app's exporter (azure-monitor-opentelemetry 1.8) samples spans at 5 traces a second
  // by default; keep every span (a few per hire). Its log records, the decision lines among
  // them, are never sampled with their traces (enable_trace_based_sampling_for_logs is off).
  OTEL_TRACES_SAMPLER: 'microsoft.fixed_percentage'
  OTEL_TRACES_SAMPLER_ARG: '1.0'
  // Per-instance concurrency, explicit beside maximumInstanceCount (README: Concurrency and
  // Partner Center throttling). The function reads these overrides too.
  AzureFunctionsJobHost__extensions__queues__batchSize: string(queueBatchSize)
  AzureFunctionsJobHost__extensions__queues__newBatchThreshold: string(queueNewBatchThreshold)
  // Sync functions run on this many worker threads; fewer would cap concurrency below the
  // host's (the default is cores + 4, which is 5 on a one-core instance).
  PYTHON_THREADPOOL_THREAD_COUNT: string(perInstanceConcurrency)
})

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  #checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption needs always-ready instances (billed when idle); a queue-fed app waits out a zone outage without losing messages.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  #checkov:skip=CKV_AZURE_222:The app has no HTTP functions, but azd deploys through the app's SCM endpoint, which public network access also governs. Basic (publishing) credentials are off, so only Entra-authorised deployers get in.
  #checkov:skip=CKV_AZURE_17:Client certificates guard HTTP functions; this app has none (one queue trigger).
  #checkov:skip=CKV_AZURE_212:Flex Consumption adds instances by itself as the queue grows; there is no fixed instance count to keep for failover, and messages wait safely in the queue.
  #checkov:skip=CKV_AZURE_78:Flex Consumption does not support siteConfig.ftpsState (it is on its list of unsupported properties); FTP is off through the ftp basicPublishingCredentialsPolicies below, which is what Flex honours.
  #checkov:skip=CKV_AZURE_213:Health checks probe an HTTP path to take bad instances out of a load balancer; a queue-triggered app has no such traffic, and a failing instance's messages are redelivered.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Deployers sign in with Entra ID (azd does); no FTP or basic-auth publishing profile exists.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output id string = app.id
