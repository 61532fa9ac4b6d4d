"""Microsoft 365 as a store, through Microsoft Graph: app-only auth (msal), a bounded HTTP
client, a calendarView delta source and a marked-entry target. Import `source`/`target` only
when an account of kind "microsoft365" is used: they need the `microsoft365` extra (msal)."""
