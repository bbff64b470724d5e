// A vault in the RBAC model (no access policies): who may read or write which secret is an
// Azure role assignment, visible and auditable like every other. Soft delete and purge
// protection keep a deleted credential or initial password recoverable for 90 days.
param name string
param location string
param tags object
@description('Log Analytics workspace for the vault\'s audit log (every secret read and write).')
param workspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  #checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration calls the vault from changing public addresses, and Functions is not a trusted service, so a deny-by-default firewall would lock the function out. Access is RBAC with Entra tokens only.
  #checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109; private access needs the optional VNet set-up.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      { category: 'AuditEvent', enabled: true }
    ]
  }
}

output name string = vault.name
