// The three custom roles of this deployment (docs/deployment-roles.md says why each exists and
// infra/permissions.json lists the operations each action is for). Built-in roles grant more:
// Storage Queue Data Contributor can delete the queue itself, Storage Table Data
// Contributor the ledger table and its records, Key Vault Secrets Officer can
// delete and purge every secret in the vault. Creating a role definition needs
// Microsoft.Authorization/roleDefinitions/write (Owner or User Access Administrator).
targetScope = 'subscription'

@description('Seeds the role ids and names: a role name must be unique in the tenant.')
param resourceToken string

// Queue trigger and poison-queue operators: read a queue's properties (message count), peek,
// receive (process), release or extend a lease (Update Message, messages/write) and delete
// a received message (process). No queue create, delete or metadata write, no Clear Messages.
resource queueMessageProcessorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceToken, 'queue-message-processor')
  properties: {
    roleName: 'Hire provisioning queue message processor (${resourceToken})'
    description: 'Receive, release, extend and delete the messages of a queue; never the queue itself.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/queueServices/queues/read'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/queueServices/queues/messages/read'
          'Microsoft.Storage/storageAccounts/queueServices/queues/messages/write'
          'Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// The hire ledger: query, insert and merge entities (the claim and every step are conditional
// writes). No entity or table delete: the ledger is the product's memory. Creating the table
// is left out too: the template creates it, and the function carries on after that 403.
resource ledgerWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceToken, 'ledger-writer')
  properties: {
    roleName: 'Hire provisioning ledger writer (${resourceToken})'
    description: 'Query, insert and update the entities of a table; never delete an entity or the table.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Key Vault: read a secret's value and store a new version. No list, no metadata, no delete,
// purge, backup or restore.
resource secretReaderWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceToken, 'secret-reader-writer')
  properties: {
    roleName: 'Hire provisioning secret reader and writer (${resourceToken})'
    description: 'Get a secret\'s value and set a new version; nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/getSecret/action'
          'Microsoft.KeyVault/vaults/secrets/setSecret/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

output queueMessageProcessorRoleId string = queueMessageProcessorRole.id
output ledgerWriterRoleId string = ledgerWriterRole.id
output secretReaderWriterRoleId string = secretReaderWriterRole.id
