// What an on-call person wants to be woken or told about. Three read the function's decision
// lines (`decision {...}`, one per outcome) in Application Insights; two need nothing from the
// app at all (the storage account's own metrics and the platform's health signal), so a host
// that crash-loops or exports nothing still pages someone.
param resourceToken string
param location string
param tags object
param appInsightsId string
@description('E-mail addresses to notify, comma-separated; none creates the alerts without notifications.')
param alertEmailAddresses string
param failureRateThresholdPercent int
@description('Name of the poison queue, as the Functions host writes it in its log line.')
param poisonQueueName string
@description('The decision lines as a table (monitoring.bicep\'s decisionsQuery).')
param decisions string
@description('Resource id of the storage account holding the queues.')
param storageAccountId string
@description('Resource id of the function app.')
param functionAppId string
@description('Alert when the storage account holds more queue messages than this (all queues together).')
param queueBacklogThreshold int

var addresses = empty(alertEmailAddresses) ? [] : split(replace(alertEmailAddresses, ' ', ''), ',')
var notify = empty(addresses) ? [] : [actionGroup.id]
var notifyGroups = [for id in notify: { actionGroupId: id }]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(addresses)) {
  name: 'ag-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'hireprov'
    enabled: true
    emailReceivers: [for (address, i) in addresses: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

// Every hire fails until a person consents again: page at once, severity 1.
resource credentialsAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-credentials-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Hire provisioning: Partner Center credentials need renewing'
    description: 'An outcome with category credentials: the refresh token expired or consent was revoked. Every hire fails until someone repeats the consent (README: Putting the credentials into Key Vault), then replays: poison-queue replay --category credentials.'
    severity: 1
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${decisions} | where category == "credentials"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify
    }
  }
}

// A poison copy arrived: the function's own (a rejected or failed outcome) or the host's
// (body only, after maxDequeueCount; these expire after 7 days unless exported).
resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-poison-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Hire provisioning: events arrived in the poison queue'
    description: 'Rejected or failed outcomes, or messages the Functions host poisoned, in the last 15 minutes. Follow the README runbook: poison-queue export, list, fix the cause, replay.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'union (${decisions} | where status in ("rejected", "failed")), (traces | where message has "Moving message to queue \'${poisonQueueName}\'")'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify
    }
  }
}

// Many outcomes failing at once points at a cause outside single events (an outage, a
// missing GDAP role for a big customer, throttling): alert on the share, over at least 10.
resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-failure-rate-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Hire provisioning: outcome failure rate above ${failureRateThresholdPercent}%'
    description: 'More than ${failureRateThresholdPercent}% of at least 10 outcomes in 30 minutes were rejected or failed. Check the categories (saved query: today\'s failures by category) and service health.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: '${decisions} | where status in ("created", "restored", "already_exists", "rejected", "failed") | summarize outcomes = count(), failures = countif(status in ("rejected", "failed")) | where outcomes >= 10 | extend failureRatePercent = 100.0 * failures / outcomes'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failureRatePercent'
          operator: 'GreaterThan'
          threshold: failureRateThresholdPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify
    }
  }
}

// Messages are piling up, read from the storage account's own metric (no app involved).
// Azure Storage reports QueueMessageCount once an hour and for the whole account only (no
// per-queue dimension): this counts the request, result and poison queues together. Poison
// copies never expire and nobody but an operator drains them, and the result queue's reader
// normally keeps it near empty, so a count that stays up means unattended poison messages, a
// stopped consumer of results, or requests the function is not taking. Neither a per-queue
// depth nor the age of the oldest request exists as a storage metric
// (docs/deployment-roles.md, "Alerts").
resource queueBacklogAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-queue-backlog-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'More than ${queueBacklogThreshold} messages in the storage account\'s queues for an hour (request, result and poison together). Look at the poison queue first (poison-queue list), then whether the function app runs.'
    severity: 2
    enabled: true
    scopes: ['${storageAccountId}/queueServices/default']
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          name: 'queued-messages'
          criterionType: 'StaticThresholdCriterion'
          metricNamespace: 'Microsoft.Storage/storageAccounts/queueServices'
          metricName: 'QueueMessageCount'
          operator: 'GreaterThan'
          threshold: queueBacklogThreshold
          timeAggregation: 'Average'
        }
      ]
    }
    autoMitigate: true
    actions: notifyGroups
  }
}

// The platform's own view of the function app (Resource Health: unavailable or degraded, which
// covers a host that keeps restarting), from the activity log, with no app telemetry needed.
resource appHealthAlert 'Microsoft.Insights/activityLogAlerts@2020-10-01' = {
  name: 'alert-app-health-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Resource Health reports the function app unavailable or degraded (platform problem, or a host that restarts over and over). Check the app\'s Diagnose and solve problems page and its host logs.'
    enabled: true
    scopes: [functionAppId]
    condition: {
      allOf: [
        { field: 'category', equals: 'ResourceHealth' }
        {
          anyOf: [
            { field: 'properties.currentHealthStatus', equals: 'Unavailable' }
            { field: 'properties.currentHealthStatus', equals: 'Degraded' }
          ]
        }
      ]
    }
    actions: {
      actionGroups: notifyGroups
    }
  }
}
