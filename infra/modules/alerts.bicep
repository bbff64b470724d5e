// What an on-call person wants to be woken or told about. All three read the function's
// decision lines (`decision {...}`, one per outcome) in Application Insights.
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

var addresses = empty(alertEmailAddresses) ? [] : split(replace(alertEmailAddresses, ' ', ''), ',')
var notify = empty(addresses) ? [] : [actionGroup.id]

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
