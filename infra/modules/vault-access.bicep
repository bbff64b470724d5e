// The function's roles on the vault holding the partner's App+User credentials (new or reused).
param vaultName string
@description('The function\'s managed identity.')
param principalId string
param refreshTokenSecretName string
@description('True once the credential secrets exist (README, "Deploy to Azure", step 3).')
param credentialSecretsStored bool

var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource refreshToken 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: refreshTokenSecretName
}

// Credentials read: the app id, the app secret and the refresh token, once per process. On
// the vault, because the secrets are stored after the first deployment (a role cannot be
// scoped to a secret that does not exist yet); keep nothing else in this vault.
resource credentialsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// Refresh-token write-back: Entra rotates the refresh token on every exchange and the function
// stores the newest as a new secret version at most once a day. Once the secret exists
// (credentialSecretsStored), the role covers that one secret and not the app secret.
resource refreshTokenWriterOnSecret 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (credentialSecretsStored) {
  name: guid(refreshToken.id, principalId, roles.keyVaultSecretsOfficer)
  scope: refreshToken
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

// Until then, on the vault: the only place a role can be given before the secret exists.
resource refreshTokenWriterOnVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!credentialSecretsStored) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

output vaultUri string = vault.properties.vaultUri
