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
@description('The custom queue message processor role (custom-roles.bicep), by resource id.')
param queueMessageProcessorRoleId string
@description('The custom ledger writer role (custom-roles.bicep), by resource id.')
param ledgerWriterRoleId string

var roles = {
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
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

// Trigger: the host reads the request queue's message count (its listener and the scale
// controller), receives messages, releases a failed delivery's message with Update Message
// (messages/write: without it the host stops on the 403 and every concurrent invocation goes
// with it) and deletes a finished one. The custom role (custom-roles.bicep) grants exactly that;
// Storage Queue Data Contributor would also let the function delete the queue.
resource triggerProcessor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(requestQueue.id, principalId, 'queue-message-processor')
  scope: requestQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: queueMessageProcessorRoleId
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

// Ledger: one record per hire, created and changed by conditional writes; never deleted (the
// custom ledger writer role of custom-roles.bicep has no delete).
resource ledgerWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ledger.id, principalId, 'ledger-writer')
  scope: ledger
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: ledgerWriterRoleId
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
// (receive, release a lease with Update Message, delete: the custom role, which cannot delete
// or clear the poison queue itself), sends replays (and the smoke test's event) to the request
// queue (Message Sender), checks outcomes (Reader) and asks the ledger what happened to a hire
// with `hires` (Table Data Reader).
resource operatorsPoison 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsPrincipalId)) {
  name: guid(poisonQueue.id, operatorsPrincipalId, 'queue-message-processor')
  scope: poisonQueue
  properties: {
    principalId: operatorsPrincipalId
    principalType: 'Group'
    roleDefinitionId: queueMessageProcessorRoleId
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
