// A new storage account for the queues, the hire ledger and the deployment package. Every
// client (the Functions host, the function, operators) signs in with Entra ID: shared keys
// and SAS are off, so there is no connection string to leak or rotate.
param name string
param location string
param tags object
@description('Log Analytics workspace for the queue service\'s diagnostic logs.')
param workspaceId string
@description('Replication: zone-redundant by default; GZRS or RAGZRS add a copy in the paired region.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGZRS'])
param skuName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage from changing public addresses; access is Entra-only (shared keys off). Add VNet integration and deny by default where required.
  #checkov:skip=CKV_AZURE_59:Same reason: the app and operators reach the public endpoint with Entra tokens; private endpoints need the optional VNet set-up.
  #checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS) by default; geo-replication is the platform team's choice (storageSkuName), since a regional failover would also need the function app in the paired region.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

// Who read, wrote or deleted which queue message: an operator's replay leaves a trace here too.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-logs'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output name string = account.name
