// The function's role on the vault for initial passwords (new or reused). A separate vault from
// the credentials: the function may write here freely, and whoever hands passwords to new
// hires can be given read access here without ever seeing the partner's credentials.
param vaultName string
@description('The function\'s managed identity.')
param principalId string

var roles = {
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// Passwords write: each hire's password is a new secret (initial-password-<hash>) that the
// function creates, reads back on a retry, re-tags as the hire progresses and, after a race,
// re-sets as the latest version. Its name is known only at run time, hence the vault scope.
resource passwordsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

output vaultUri string = vault.properties.vaultUri
