//! The tenant's indicators: upsert, delete, expiry cleanup, seeding and the JSON state file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{add_std, format_ts_secs, format_ts7, parse_ts};
use crate::config::{Behaviour, Role};
use crate::validate::{ApiError, IndicatorInput};
use crate::wire::Indicator;

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub client_id: String,
    pub display_name: String,
    pub role: Role,
}

impl Caller {
    pub(crate) fn sees(&self, ind: &Indicator) -> bool {
        self.role == Role::ReadWriteAll || ind.created_by == self.client_id
    }
}

/// An indicator to insert as if created in the portal or by another app (bypasses validation and the cap).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedIndicator {
    /// `indicatorType`.
    pub indicator_type: String,
    /// `indicatorValue`.
    pub value: String,
    /// `action`.
    pub action: String,
    /// UPN (portal) or app id.
    pub created_by: String,
    /// `Portal` or `PublicApi`.
    pub created_by_source: String,
    /// UPN or app display name.
    pub created_by_display_name: String,
    /// `application` tag.
    pub application: Option<String>,
    /// `title`.
    pub title: String,
    /// `description`.
    pub description: String,
    /// `severity`.
    pub severity: String,
    /// `generateAlert`.
    pub generate_alert: bool,
    /// `expirationTime` (None = never).
    pub expiration_time: Option<DateTime<Utc>>,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `rbacGroupNames`.
    pub rbac_group_names: Vec<String>,
    /// Creation time; `None` = the emulator clock's now.
    pub created_at: Option<DateTime<Utc>>,
}

impl SeedIndicator {
    /// A row an analyst created in the portal (`createdBySource: "Portal"`, UPN in `createdBy`).
    pub fn portal(indicator_type: &str, value: &str, action: &str, upn: &str) -> Self {
        Self {
            indicator_type: indicator_type.to_owned(),
            value: value.to_owned(),
            action: action.to_owned(),
            created_by: upn.to_owned(),
            created_by_source: "Portal".to_owned(),
            created_by_display_name: upn.to_owned(),
            application: None,
            title: format!("Manual {indicator_type} indicator"),
            description: "Created in the portal".to_owned(),
            severity: "Informational".to_owned(),
            generate_alert: action == "Audit",
            expiration_time: None,
            external_id: None,
            rbac_group_names: Vec::new(),
            created_at: None,
        }
    }

    /// A row another app created through the API.
    pub fn app(indicator_type: &str, value: &str, action: &str, app_id: &str, application: &str) -> Self {
        Self {
            created_by_source: "PublicApi".to_owned(),
            created_by_display_name: application.to_owned(),
            application: Some(application.to_owned()),
            description: format!("Created by {application}"),
            ..Self::portal(indicator_type, value, action, app_id)
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    ind: Indicator,
    expires: Option<DateTime<Utc>>,
}

type Key = (String, String, String);

/// Index key: values are lower-cased so the case-insensitive switch can use the same index; exact
/// matching re-checks the value.
fn key_of(ind: &Indicator) -> Key {
    (ind.indicator_type.clone(), ind.indicator_value.to_lowercase(), ind.action.clone())
}

/// Persisted form of the store.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateFile {
    next_id: u64,
    indicators: Vec<Indicator>,
}

/// A point-in-time copy of the store for the state file.
#[derive(Debug)]
pub(crate) struct StateSnapshot(StateFile);

impl StateSnapshot {
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.0)
    }
}

/// Result of an upsert.
#[derive(Debug, Clone)]
pub(crate) struct Upserted {
    pub indicator: Indicator,
    /// True when a new row was created (false: an existing row was updated in place).
    pub created: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    rows: BTreeMap<u64, Stored>,
    by_key: HashMap<Key, Vec<u64>>,
    next_id: u64,
    /// When API deletes happened, for `Behaviour::capacity_release_lag`.
    recent_deletes: std::collections::VecDeque<DateTime<Utc>>,
}

impl Store {
    pub(crate) fn new() -> Self {
        Self { rows: BTreeMap::new(), by_key: HashMap::new(), next_id: 1, recent_deletes: Default::default() }
    }

    fn insert(&mut self, ind: Indicator) -> Indicator {
        let id = self.next_id;
        self.next_id += 1;
        let mut ind = ind;
        ind.id = id.to_string();
        let expires = input_expiry(&ind);
        self.by_key.entry(key_of(&ind)).or_default().push(id);
        self.rows.insert(id, Stored { ind: ind.clone(), expires });
        ind
    }

    fn remove(&mut self, id: u64) -> Option<Indicator> {
        let s = self.rows.remove(&id)?;
        let k = key_of(&s.ind);
        if let Some(v) = self.by_key.get_mut(&k) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.by_key.remove(&k);
            }
        }
        Some(s.ind)
    }

    /// Removes indicators whose expiration passed more than `lag` ago. Returns how many were removed.
    pub(crate) fn purge_expired(&mut self, now: DateTime<Utc>, lag: std::time::Duration) -> usize {
        let gone: Vec<u64> = self
            .rows
            .iter()
            .filter(|(_, s)| s.expires.is_some_and(|e| add_std(e, lag) <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(*id);
        }
        gone.len()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Indicator> {
        self.rows.get(&id).map(|s| &s.ind)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Indicator> {
        self.rows.values().map(|s| &s.ind)
    }

    /// Deletes through the API at `now` (the slot is released after `capacity_release_lag`).
    pub(crate) fn delete(&mut self, id: u64, now: DateTime<Utc>) -> Option<Indicator> {
        let removed = self.remove(id)?;
        self.recent_deletes.push_back(now);
        Some(removed)
    }

    /// Rows plus recently deleted ones still holding a slot.
    fn used_slots(&mut self, now: DateTime<Utc>, lag: std::time::Duration) -> usize {
        while self.recent_deletes.front().is_some_and(|t| add_std(*t, lag) <= now) {
            self.recent_deletes.pop_front();
        }
        self.rows.len() + self.recent_deletes.len()
    }

    /// Submit-or-update on (type, value, action) among the rows the caller can see.
    pub(crate) fn upsert(
        &mut self,
        mut input: IndicatorInput,
        caller: &Caller,
        now: DateTime<Utc>,
        capacity: usize,
        behaviour: &Behaviour,
    ) -> Result<Upserted, ApiError> {
        if behaviour.drop_external_id {
            input.external_id = None;
        }
        if behaviour.normalize_values {
            input.value = stored_spelling(&input.itype, &input.value);
        }
        if behaviour.drop_optional_fields {
            input.recommended_actions = None;
            input.educate_url = None;
            input.mitre_techniques.clear();
            input.category = None;
        }
        let key: Key = (input.itype.clone(), input.value.to_lowercase(), input.action.clone());
        let matches = |s: &Indicator| {
            caller.sees(s)
                && (behaviour.case_insensitive_match || s.indicator_value == input.value)
                && (!behaviour.rbac_in_match_key || s.rbac_group_names == input.rbac_group_names)
        };
        let existing = self.by_key.get(&key).and_then(|ids| {
            ids.iter().copied().find(|id| self.rows.get(id).is_some_and(|s| matches(&s.ind)))
        });
        let expiration_time = input.expiration.map(format_ts_secs);
        let (source, source_type) = if behaviour.include_source_fields {
            (Some(caller.display_name.clone()), Some("AadApp".to_owned()))
        } else {
            (None, None)
        };
        if let Some(id) = existing {
            let Some(stored) = self.rows.get_mut(&id) else {
                return Err(ApiError::new(500, "InternalServerError", "index out of sync"));
            };
            let old = &stored.ind;
            let ind = Indicator {
                id: old.id.clone(),
                created_by: old.created_by.clone(),
                created_by_display_name: old.created_by_display_name.clone(),
                created_by_source: old.created_by_source.clone(),
                creation_time_date_time_utc: old.creation_time_date_time_utc.clone(),
                application: old.application.clone(),
                version: old.version.clone(),
                certificate_info: old.certificate_info.clone(),
                last_update_time: format_ts7(now),
                last_updated_by: Some(caller.client_id.clone()),
                source: old.source.clone(),
                source_type: old.source_type.clone(),
                ..from_input(input, expiration_time)
            };
            let mut ind = ind;
            if behaviour.merge_updates && !behaviour.drop_optional_fields {
                let old = &stored.ind;
                if ind.recommended_actions.is_none() {
                    ind.recommended_actions.clone_from(&old.recommended_actions);
                }
                if ind.educate_url.is_none() {
                    ind.educate_url.clone_from(&old.educate_url);
                }
                if ind.category.is_none() {
                    ind.category = old.category;
                }
                if ind.rbac_group_names.is_empty() {
                    ind.rbac_group_names.clone_from(&old.rbac_group_names);
                }
                if ind.mitre_techniques.is_empty() {
                    ind.mitre_techniques.clone_from(&old.mitre_techniques);
                }
            }
            stored.expires = input_expiry(&ind);
            stored.ind = ind.clone();
            return Ok(Upserted { indicator: ind, created: false });
        }
        if self.used_slots(now, behaviour.capacity_release_lag) >= capacity {
            let message = behaviour.capacity_message.clone().unwrap_or_else(|| {
                format!(
                    "The maximum number of active indicators ({capacity}) for this tenant has been reached. Delete indicators before adding new ones."
                )
            });
            return Err(ApiError::bad("BadRequest", message));
        }
        let ind = Indicator {
            created_by: caller.client_id.clone(),
            created_by_display_name: caller.display_name.clone(),
            created_by_source: "PublicApi".to_owned(),
            creation_time_date_time_utc: format_ts7(now),
            last_update_time: format_ts7(now),
            last_updated_by: None,
            source,
            source_type,
            ..from_input(input, expiration_time)
        };
        Ok(Upserted { indicator: self.insert(ind), created: true })
    }

    pub(crate) fn seed(&mut self, seed: SeedIndicator, now: DateTime<Utc>) -> Indicator {
        let created = seed.created_at.unwrap_or(now);
        let ind = Indicator {
            id: String::new(),
            indicator_value: seed.value,
            indicator_type: seed.indicator_type,
            action: seed.action,
            created_by: seed.created_by,
            severity: seed.severity,
            category: None,
            application: seed.application,
            educate_url: None,
            bypass_duration_hours: None,
            title: seed.title,
            description: seed.description,
            recommended_actions: None,
            creation_time_date_time_utc: format_ts7(created),
            expiration_time: seed.expiration_time.map(format_ts_secs),
            last_update_time: format_ts7(created),
            last_updated_by: None,
            rbac_group_names: seed.rbac_group_names,
            rbac_group_ids: Vec::new(),
            notification_id: None,
            notification_body: None,
            version: None,
            mitre_techniques: Vec::new(),
            historical_detection: false,
            look_back_period: None,
            generate_alert: seed.generate_alert,
            additional_info: None,
            created_by_display_name: seed.created_by_display_name,
            external_id: seed.external_id,
            created_by_source: seed.created_by_source,
            certificate_info: None,
            source: None,
            source_type: None,
        };
        self.insert(ind)
    }

    /// A copy of the persistent state, taken under the lock and serialized outside it.
    pub(crate) fn snapshot(&self) -> StateSnapshot {
        StateSnapshot(StateFile { next_id: self.next_id, indicators: self.iter().cloned().collect() })
    }

    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(e) => return Err(e.to_string()),
        };
        let state: StateFile =
            serde_json::from_slice(&bytes).map_err(|e| format!("not valid emulator state JSON: {e}"))?;
        let mut store = Self::new();
        let mut max_id = 0;
        for ind in state.indicators {
            let id: u64 =
                ind.id.parse().map_err(|_| format!("indicator id {:?} is not a decimal integer", ind.id))?;
            max_id = max_id.max(id);
            let expires = input_expiry(&ind);
            store.by_key.entry(key_of(&ind)).or_default().push(id);
            store.rows.insert(id, Stored { ind, expires });
        }
        // Ids are never reused, even if the file's counter is stale.
        store.next_id = state.next_id.max(max_id + 1).max(1);
        Ok(store)
    }
}

fn input_expiry(ind: &Indicator) -> Option<DateTime<Utc>> {
    ind.expiration_time.as_deref().and_then(parse_ts)
}

fn from_input(i: IndicatorInput, expiration_time: Option<String>) -> Indicator {
    Indicator {
        id: String::new(),
        indicator_value: i.value,
        indicator_type: i.itype,
        action: i.action,
        created_by: String::new(),
        severity: i.severity,
        category: i.category,
        application: i.application,
        educate_url: i.educate_url,
        bypass_duration_hours: i.bypass_duration_hours,
        title: i.title,
        description: i.description,
        recommended_actions: i.recommended_actions,
        creation_time_date_time_utc: String::new(),
        expiration_time,
        last_update_time: String::new(),
        last_updated_by: None,
        rbac_group_names: i.rbac_group_names,
        rbac_group_ids: i.rbac_group_ids,
        notification_id: i.notification_id,
        notification_body: i.notification_body,
        version: i.version,
        mitre_techniques: i.mitre_techniques,
        historical_detection: i.historical_detection,
        look_back_period: i.look_back_period,
        generate_alert: i.generate_alert,
        additional_info: i.additional_info,
        created_by_display_name: String::new(),
        external_id: i.external_id,
        created_by_source: String::new(),
        certificate_info: i.certificate_info,
        source: None,
        source_type: None,
    }
}

/// How a tenant with `Behaviour::normalize_values` stores a value: IPv6 compressed; a URL with
/// scheme and host lower-cased and `/` for an empty path. Other values as sent.
pub(crate) fn stored_spelling(itype: &str, value: &str) -> String {
    match itype {
        "IpAddress" => match value.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => value.to_owned(),
        },
        "Url" => match value.find("://") {
            Some(p) => {
                let after = &value[p + 3..];
                let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
                let mut out = value[..p + 3 + host_end].to_ascii_lowercase();
                if !after[host_end..].starts_with('/') {
                    out.push('/');
                }
                out.push_str(&after[host_end..]);
                out
            }
            None => value.to_owned(),
        },
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::stored_spelling;

    #[test]
    fn stored_spelling_compresses_ipv6_and_normalises_url_origins() {
        assert_eq!(stored_spelling("IpAddress", "2001:db8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(stored_spelling("IpAddress", "45.66.1.2"), "45.66.1.2");
        assert_eq!(stored_spelling("Url", "HTTP://Evil.Example"), "http://evil.example/");
        assert_eq!(stored_spelling("Url", "https://E.example?q=A"), "https://e.example/?q=A");
        assert_eq!(stored_spelling("Url", "https://e.example/Path"), "https://e.example/Path");
        assert_eq!(stored_spelling("DomainName", "Evil.Example"), "Evil.Example");
    }
}
