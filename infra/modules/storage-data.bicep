// What lives in the storage account (new or reused): the three queues, the hire ledger and the
// deployment container, all created up front, and the function's roles on each of them.
// Roles are scoped to the single queue or table that needs them, so the function can, for
// example, send to the poison queue but never read or delete from it.
param accountName string
param requestQueueName string
param resultQueueName string
param hireLedgerTable string
param deploymentContainerName string
@description('The function\'s managed identity.')
param principalId string
@description('Entra group of operators who run poison-queue; empty assigns nothing.')
param operatorsPrincipalId string

var roles = {
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataMessageProcessor: '8a0f0c08-91a1-4084-bc3d-661d67233fed'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: requestQueueName
}

resource resultQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: resultQueueName
}

// The host and the function both write here; it exists before either runs, so neither needs
// the right to create queues.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${requestQueueName}-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource ledger 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: hireLedgerTable
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Trigger: the host peeks and counts the request queue (Reader, also what the scale
// controller reads) and receives, renews and deletes its messages (Message Processor).
resource triggerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(requestQueue.id, principalId, roles.storageQueueDataReader)
  scope: requestQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
  }
}

resource triggerProcessor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(requestQueue.id, principalId, roles.storageQueueDataMessageProcessor)
  scope: requestQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageProcessor)
  }
}

// Outputs: the outcome binding sends to the result queue; it never reads it.
resource outputSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resultQueue.id, principalId, roles.storageQueueDataMessageSender)
  scope: resultQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

// Poison copies: the function writes its own (with lastFailure), the host its body-only ones.
resource poisonSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(poisonQueue.id, principalId, roles.storageQueueDataMessageSender)
  scope: poisonQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

// Ledger: one record per hire, created and changed by conditional writes.
resource ledgerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ledger.id, principalId, roles.storageTableDataContributor)
  scope: ledger
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

// Host storage and deployment package: the host keeps its keys and locks in containers it
// creates itself at start-up (azure-webjobs-hosts, azure-webjobs-secrets), and Flex
// Consumption fetches the package from the deployment container. Creating a container is an
// account-level action, so this is the one role on the whole account; it grants blob data only.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageBlobDataOwner)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Operators (optional): poison-queue lists, exports, replays and deletes poison messages
// (Contributor: a replay releases leases, an Update Message call), sends replays (and the
// smoke test's event) to the request queue (Message Sender), checks outcomes (Reader) and
// asks the ledger what happened to a hire with `hires` (Table Data Reader).
resource operatorsPoison 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsPrincipalId)) {
  name: guid(poisonQueue.id, operatorsPrincipalId, roles.storageQueueDataContributor)
  scope: poisonQueue
  properties: {
    principalId: operatorsPrincipalId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource operatorsReplay 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsPrincipalId)) {
  name: guid(requestQueue.id, operatorsPrincipalId, roles.storageQueueDataMessageSender)
  scope: requestQueue
  properties: {
    principalId: operatorsPrincipalId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

resource operatorsOutcomes 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsPrincipalId)) {
  name: guid(resultQueue.id, operatorsPrincipalId, roles.storageQueueDataReader)
  scope: resultQueue
  properties: {
    principalId: operatorsPrincipalId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
  }
}

resource operatorsLedger 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsPrincipalId)) {
  name: guid(ledger.id, operatorsPrincipalId, roles.storageTableDataReader)
  scope: ledger
  properties: {
    principalId: operatorsPrincipalId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
  }
}

output endpoints object = {
  queue: account.properties.primaryEndpoints.queue
  table: account.properties.primaryEndpoints.table
  blob: account.properties.primaryEndpoints.blob
}
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
