// Entra ID access to the HTTP intake (POST /api/hires, GET /api/hires/{eventId}): App Service
// authentication in front of the function app, off by default (function keys then guard the
// routes). When on, only a token of the API's app registration, issued by the partner's
// tenant to the HR system's application, gets through; the function reads the token's app
// roles from the X-MS-CLIENT-PRINCIPAL header App Service adds (Hires.Submit for POST,
// Hires.Read for GET) and switches its routes to need no key (WEBSITE_AUTH_ENABLED, set by
// App Service, tells it). docs/http-intake.md explains the app registrations.

@description('Name of the function app to put behind App Service authentication.')
param appName string

@description('Turn Entra ID access on. Off: function keys, one per route.')
param enabled bool = false

@description('Tenant that issues the tokens (the partner tenant).')
param tenantId string

@description('Application (client) id of the API app registration that defines the app roles Hires.Submit and Hires.Read.')
param apiClientId string = ''

@description('Application (client) id of the HR system: the only caller admitted.')
param hrClientId string = ''

@description('Token issuer host, as the function uses it (sovereign clouds differ); the cloud\'s own by default, not a hard-coded host.')
param entraAuthorityHost string = environment().authentication.loginEndpoint

var authority = endsWith(entraAuthorityHost, '/') ? substring(entraAuthorityHost, 0, length(entraAuthorityHost) - 1) : entraAuthorityHost

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (enabled) {
  // checkov reads any sites/config resource as the web configuration; this is authsettingsV2.
  #checkov:skip=CKV_AZURE_13:This resource IS App Service authentication (authsettingsV2, platform.enabled); the check only knows the legacy authsettings resource and its top-level enabled flag.
  #checkov:skip=CKV_AZURE_63:HTTP logging is a property of the web configuration, not of authsettingsV2.
  #checkov:skip=CKV_AZURE_65:Detailed error messages are a property of the web configuration, not of authsettingsV2.
  #checkov:skip=CKV_AZURE_66:Failed request tracing is a property of the web configuration, not of authsettingsV2.
  #checkov:skip=CKV_AZURE_80:.NET Framework version is a property of the web configuration, not of authsettingsV2 (and the app runs Python).
  #checkov:skip=CKV_AZURE_88:Azure Files mounts are a property of the web configuration, not of authsettingsV2.
  #checkov:skip=CKV_AZURE_222:Public network access is a property of the site (function-app.bicep); this resource is the authentication in front of it.
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      // An API has nobody to redirect to a sign-in page: a missing token is a 401.
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: apiClientId
          openIdIssuer: '${authority}/${tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${apiClientId}'
            apiClientId
          ]
          // The HR system's application and nothing else (the function checks it again
          // from HIRES_HTTP_ALLOWED_CLIENT_IDS when that setting is given).
          defaultAuthorizationPolicy: {
            allowedApplications: [
              hrClientId
            ]
          }
          jwtClaimChecks: {
            allowedClientApplications: [
              hrClientId
            ]
          }
        }
      }
    }
    login: {
      // The function never needs the caller's tokens, so none are stored.
      tokenStore: {
        enabled: false
      }
    }
  }
}

output enabled bool = enabled
