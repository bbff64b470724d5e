// The function's role on the vault for initial passwords (new or reused). A separate vault from
// the credentials: the function may write here freely, and whoever hands passwords to new
// hires can be given read access here without ever seeing the partner's credentials.
param vaultName string
@description('The function\'s managed identity.')
param principalId string
@description('The custom secret reader-and-writer role (custom-roles.bicep), by resource id.')
param secretReaderWriterRoleId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// Passwords: each hire's password is a new secret (initial-password-<hash>) that the function
// sets (with its tags) and reads back on a retry; after a race it sets it again as the latest
// version. Its name is known only at run time, hence the vault scope. Get and set only: the
// function can neither list the vault nor delete a password.
resource passwordsReaderWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, 'secret-reader-writer')
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: secretReaderWriterRoleId
  }
}

output vaultUri string = vault.properties.vaultUri
