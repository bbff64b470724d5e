// Log Analytics and Application Insights. Application Insights accepts only Entra-authenticated
// telemetry (local auth off), so no instrumentation key is ever a secret of the app: the
// function's identity publishes with Monitoring Metrics Publisher.
param resourceToken string
param location string
param tags object
@description('The function\'s managed identity.')
param principalId string

var roles = {
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

// Telemetry: the Functions host and the worker send logs and metrics with Entra tokens.
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Saved queries, shown under Logs > Queries > "Hire provisioning" in Application Insights.
// Every decision is one log line: `decision {"eventId": ..., "status": ..., "category": ...}`.
var decisions = 'traces | where message startswith "decision {" | extend d = parse_json(substring(message, 9)) | extend eventId = tostring(d.eventId), status = tostring(d.status), category = tostring(d.category), customer = tostring(d.customer)'

resource queryPack 'Microsoft.OperationalInsights/queryPacks@2019-09-01' = {
  name: 'pack-${resourceToken}'
  location: location
  tags: tags
  properties: {}
}

resource failuresToday 'Microsoft.OperationalInsights/queryPacks/queries@2019-09-01' = {
  parent: queryPack
  name: guid(queryPack.id, 'failures-today')
  properties: {
    displayName: 'Hire provisioning: today\'s failures by category'
    description: 'Rejected and failed outcomes since midnight UTC, by category, with the operator message.'
    body: '${decisions} | where timestamp >= startofday(now()) and status in ("rejected", "failed") | summarize failures = count(), customers = dcount(customer), example = take_any(tostring(d.error)) by category, status | order by failures desc'
    related: {
      resourceTypes: ['microsoft.insights/components']
    }
    tags: {
      labels: ['Hire provisioning']
    }
  }
}

resource oneHire 'Microsoft.OperationalInsights/queryPacks/queries@2019-09-01' = {
  parent: queryPack
  name: guid(queryPack.id, 'one-hire')
  properties: {
    displayName: 'Hire provisioning: one hire\'s trace by eventId'
    description: 'Every decision and every log line of the invocations that handled one eventId (edit the first line).'
    body: 'let wanted = "hr-2026-000123"; let ops = ${decisions} | where eventId == wanted | distinct operation_Id; union traces, exceptions, dependencies | where operation_Id in (ops) | project timestamp, itemType, message = coalesce(message, outerMessage, name), severityLevel, operation_Id | order by timestamp asc'
    related: {
      resourceTypes: ['microsoft.insights/components']
    }
    tags: {
      labels: ['Hire provisioning']
    }
  }
}

resource outcomesByHour 'Microsoft.OperationalInsights/queryPacks/queries@2019-09-01' = {
  parent: queryPack
  name: guid(queryPack.id, 'outcomes-by-hour')
  properties: {
    displayName: 'Hire provisioning: outcomes per hour'
    description: 'Final outcomes per hour and status over the last 24 hours.'
    body: '${decisions} | where timestamp > ago(24h) and status in ("created", "restored", "already_exists", "rejected", "failed") | summarize count() by bin(timestamp, 1h), status | render columnchart'
    related: {
      resourceTypes: ['microsoft.insights/components']
    }
    tags: {
      labels: ['Hire provisioning']
    }
  }
}

output decisionsQuery string = decisions
output workspaceId string = workspace.id
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
