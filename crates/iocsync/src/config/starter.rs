//! The commented starter configuration written by `iocsync init`.

/// A complete, valid configuration with every key explained; edit the ids and feeds.
pub const STARTER_CONFIG: &str = r#"# iocsync configuration. Every key is optional unless marked "required".
# Check it with `iocsync check`; preview changes with `iocsync plan`; apply with `iocsync sync`.

[defender]
# Required: your Entra tenant id and the app registration's client id. The app needs the
# WindowsDefenderATP application permission Ti.ReadWrite.All (Submit, Import, Delete and BatchDelete
# require it; with Ti.ReadWrite iocsync sees only its own indicators and cannot count other creators'
# ones against the 15,000 cap).
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
# Required: where the client secret is. Never write the secret itself here.
client_secret = { env = "IOCSYNC_CLIENT_SECRET" }   # or { file = "/etc/iocsync/secret" } (mode 0600)
# client_certificate = { key_file = "/etc/iocsync/key.pem", cert_file = "/etc/iocsync/cert.pem" }
#   signs PS256 assertions with x5t#S256; add algorithm = "RS256" for the older x5t (SHA-1) form
cloud = "commercial"            # commercial | gcc | gcc-high | dod
# api_base = "https://eu.api.security.microsoft.com"   # regional or test override
# authority = "https://login.microsoftonline.com"      # test override
# scope = "https://api.securitycenter.microsoft.com/.default"
# emulator = true               # try iocsync against a local emulator instead of a tenant

[sync]
owner_tag = "iocsync"           # marker `iocsync:{owner_tag}`; iocsync changes only indicators with its client id AND this marker
marker_field = "externalId"     # where the marker goes: externalId (never shown to users) | description (a
                                #   ` [iocsync:TAG]` suffix, for tenants that drop externalId: `iocsync check` tells)
capacity = 15000                # Defender's tenant-wide cap, shared with every other creator
headroom = 500                  # left free for analysts' manual indicators
max_delete_fraction = 0.25      # refuse a plan deleting more than this share of owned indicators (override: --force)
renew_before_days = 10          # renew an indicator still in a feed when its expiry is this close
# approval = false              # true: the daemon plans instead of applying; an approver applies the plan
# four_eyes = false             # true (needs approval): nobody applies a plan they made or that pushes
                                #   manual values they added or removed, nor confirms their own undo request
# state = "/var/lib/iocsync/iocsync.db"   # state database (feed cache, run history). Default:
                                #   $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/iocsync, /var/lib/iocsync
                                #   (root), ~/.local/state/iocsync, %ProgramData%\iocsync (Windows);
                                #   a relative path is relative to this file

[defaults]                      # per-feed values override these
action = "Block"                # Allowed | Audit | Warn | Block | BlockAndRemediate (files and certificates)
severity = "High"               # Informational | Low | Medium | High
generate_alert = true
expire_days = 30                # every indicator expires; iocsync renews it while it stays in a feed
title = "{feed}: {value}"       # placeholders: {feed} {value} {type}
description = "Imported by iocsync from {feed}"
rbac_groups = []                # device-group names; [] = all devices
# application = "Blocked by Contoso security"   # shown to END USERS in block notifications in place of the
                                #   blocked file or domain ({feed} {value} {type}); unset by default

[[feeds]]
name = "feodo"
source = "https://feodotracker.abuse.ch/downloads/ipblocklist.csv"   # https URL or a file path
format = "csv"                  # auto | text | csv | hosts | stix | misp | taxii | defender-csv
column = "dst_ip"               # csv: header name or 0-based index
types = ["IpAddress"]           # optional filter
priority = 10                   # higher wins when two feeds carry the same value
max_age = "48h"                 # how long the last good copy stands in when the feed fails

# [[feeds]]
# name = "bazaar"
# source = "https://bazaar.abuse.ch/export/txt/sha256/recent/"
# format = "text"
# action = "BlockAndRemediate"
# severity = "Medium"

# [[feeds]]                     # the analysts' manual list: values added in the console (at most one)
# name = "analysts"
# source = "manual"             # read from the state database, never fetched
# priority = 20
# row_actions = ["Audit"]       # actions an analyst may choose per value besides `action`

[allowlist]
values = []                     # domains (protect subdomains and URLs), IPs, CIDRs, hashes
files = []                      # text lists or MISP warninglist JSON files
builtin = true                  # Microsoft service domains, public DNS resolvers, private ranges

[daemon]
interval = "6h"                 # or schedule = "0 */6 * * *" (cron); the daemon also runs once at start
tz = "UTC"                      # time zone of a cron schedule (IANA name, e.g. "Europe/Rome"); UTC by default
# max_staleness = "12h"         # /readyz fails when a tenant's last success is older (default: 2 x the interval)
listen = "127.0.0.1:8944"       # /metrics (Prometheus), /healthz (liveness), /readyz (last success fresh)

# [console]                     # the analyst console, served by `iocsync daemon`
# enabled = true
# listen = "127.0.0.1:8945"     # loopback by default
# auth = "local"                # users: `iocsync console add-user NAME --role viewer|analyst|approver`
# users_file = "console-users.toml"
# tls_cert = "console.pem"      # serve HTTPS (PEM, with tls_key); or auth = "proxy" behind oauth2-proxy:
# proxy_addresses = ["127.0.0.1"]
# secure_cookies = true         # when TLS ends at that proxy (on by default with tls_cert)
"#;
