// The function's role on the vault holding the partner's App+User credentials (new or reused).
// One assignment of the custom secret reader-and-writer role (custom-roles.bicep): it reads the
// app id, the app secret and the refresh token, and stores each new refresh token as a new
// version (Entra rotates it on every exchange). It cannot list, delete, purge or back up a
// secret. The scope is the vault, not the three secrets: a role cannot be scoped to a secret
// that does not exist yet, and these are stored after the first deployment. So keep nothing
// else in this vault (docs/deployment-roles.md).
param vaultName string
@description('The function\'s managed identity.')
param principalId string
@description('The custom secret reader-and-writer role (custom-roles.bicep), by resource id.')
param secretReaderWriterRoleId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource credentialsReaderWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, 'secret-reader-writer')
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: secretReaderWriterRoleId
  }
}

output vaultUri string = vault.properties.vaultUri
