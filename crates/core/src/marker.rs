//! The ownership marker (DESIGN principle 1): iocsync owns an indicator when Defender recorded
//! its client id as `createdBy` *and* the indicator carries the marker `iocsync:{owner_tag}`.
//!
//! The marker lives in `externalId` (a correlation field only the SOC sees) or, for a tenant that
//! does not keep `externalId`, as the suffix ` [iocsync:{owner_tag}]` of the description
//! (`[sync] marker_field = "description"`). `application` is not a marker: Defender shows it to end
//! users in block notifications. Rows made by iocsync before the marker moved carry the owner tag
//! in `application` and no marker; they stay owned (the legacy rule) so that no deployment loses
//! track of what it created. Defender ignores `application` on update, so such a row keeps it
//! until it leaves the feeds or expires; every update or renewal gives it the marker.

use std::fmt;

/// Prefix of the marker: `iocsync:{owner_tag}`.
pub const MARKER_PREFIX: &str = "iocsync:";

/// Where iocsync writes its ownership marker (`[sync] marker_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MarkerField {
    /// `externalId = "iocsync:{owner_tag}"` (the default).
    #[default]
    ExternalId,
    /// A ` [iocsync:{owner_tag}]` suffix on every description (for tenants that drop `externalId`).
    Description,
}

impl MarkerField {
    /// The config spelling: `externalId` or `description`.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerField::ExternalId => "externalId",
            MarkerField::Description => "description",
        }
    }
}

impl fmt::Display for MarkerField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MarkerField {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "externalId" => Ok(MarkerField::ExternalId),
            "description" => Ok(MarkerField::Description),
            other => {
                Err(format!("unknown marker field `{other}`: expected \"externalId\" or \"description\""))
            }
        }
    }
}

/// How iocsync marks the indicators it writes: the field and the owner tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Marker {
    /// Where the marker goes.
    pub field: MarkerField,
    /// The owner tag (`[sync] owner_tag`, default `iocsync`).
    pub tag: String,
}

impl Marker {
    /// A marker in `field` for `tag`.
    pub fn new(field: MarkerField, tag: impl Into<String>) -> Self {
        Marker { field, tag: tag.into() }
    }

    /// The `externalId` value sent: `iocsync:{tag}`.
    pub fn external_id(&self) -> String {
        external_id_marker(&self.tag)
    }

    /// The description suffix: ` [iocsync:{tag}]`.
    pub fn description_suffix(&self) -> String {
        description_suffix(&self.tag)
    }

    /// True when a row's `externalId` / description carry this marker in its own field.
    pub fn carried_by(&self, external_id: Option<&str>, description: Option<&str>) -> bool {
        match self.field {
            MarkerField::ExternalId => external_id == Some(self.external_id().as_str()),
            MarkerField::Description => description.is_some_and(|d| d.ends_with(&self.description_suffix())),
        }
    }
}

/// `iocsync:{tag}`, the `externalId` marker.
pub fn external_id_marker(tag: &str) -> String {
    format!("{MARKER_PREFIX}{tag}")
}

/// ` [iocsync:{tag}]`, the description marker (with its leading space).
pub fn description_suffix(tag: &str) -> String {
    format!(" [{MARKER_PREFIX}{tag}]")
}

/// Appends the description marker to `description`, cutting the text before it (ending with `…`)
/// so that the whole stays within `max` characters. A description that already ends with the
/// suffix is kept as it is.
pub fn with_description_suffix(description: &str, tag: &str, max: usize) -> String {
    let suffix = description_suffix(tag);
    if description.ends_with(&suffix) && description.chars().count() <= max {
        return description.to_owned();
    }
    let room = max.saturating_sub(suffix.chars().count());
    let mut out = if description.chars().count() <= room {
        description.to_owned()
    } else {
        let mut cut: String = description.chars().take(room.saturating_sub(1)).collect();
        cut.push('…');
        cut
    };
    out.push_str(&suffix);
    out
}

/// The fields of a listed indicator that decide ownership.
#[derive(Debug, Clone, Copy)]
pub struct OwnershipFields<'a> {
    /// `createdBy`.
    pub created_by: Option<&'a str>,
    /// `externalId`.
    pub external_id: Option<&'a str>,
    /// `description`.
    pub description: Option<&'a str>,
    /// `application`.
    pub application: Option<&'a str>,
}

/// The ownership rule (DESIGN principle 1), shared by the plan and by list/purge/check/adopt:
/// `createdBy` equals `client_id` (compared case-insensitively: GUIDs) *and* the row carries the
/// marker for `tag` — `externalId == "iocsync:{tag}"`, or a description ending with
/// ` [iocsync:{tag}]` (either field, so switching `marker_field` never loses rows), or, for rows
/// made by earlier versions, `application == tag`. Tags and markers compare exactly (no trim,
/// case matters).
pub fn is_owned(f: OwnershipFields<'_>, client_id: &str, tag: &str) -> bool {
    let ours = f.created_by.is_some_and(|c| c.eq_ignore_ascii_case(client_id));
    if !ours {
        return false;
    }
    f.external_id == Some(external_id_marker(tag).as_str())
        || f.description.is_some_and(|d| d.ends_with(&description_suffix(tag)))
        || f.application == Some(tag)
}

/// True when a row made by `client_id` carries no marker but the owner tag in `application`: a
/// row written by an iocsync before the marker moved to `externalId` (still owned).
pub fn is_legacy(f: OwnershipFields<'_>, client_id: &str, tag: &str) -> bool {
    is_owned(f, client_id, tag)
        && f.external_id != Some(external_id_marker(tag).as_str())
        && !f.description.is_some_and(|d| d.ends_with(&description_suffix(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "11111111-2222-3333-4444-555555555555";

    fn fields<'a>(
        created_by: &'a str,
        external_id: Option<&'a str>,
        description: Option<&'a str>,
        application: Option<&'a str>,
    ) -> OwnershipFields<'a> {
        OwnershipFields { created_by: Some(created_by), external_id, description, application }
    }

    #[test]
    fn owned_needs_our_client_and_a_marker() {
        assert!(is_owned(fields(ME, Some("iocsync:iocsync"), None, None), ME, "iocsync"));
        assert!(is_owned(fields(&ME.to_uppercase(), Some("iocsync:iocsync"), None, None), ME, "iocsync"));
        assert!(is_owned(fields(ME, None, Some("from feed [iocsync:iocsync]"), None), ME, "iocsync"));
        assert!(is_owned(fields(ME, None, None, Some("iocsync")), ME, "iocsync"), "legacy rows stay owned");
        assert!(is_legacy(fields(ME, Some("other"), None, Some("iocsync")), ME, "iocsync"));
        assert!(!is_legacy(fields(ME, Some("iocsync:iocsync"), None, Some("iocsync")), ME, "iocsync"));
        // Our client without any marker: not ours.
        assert!(!is_owned(fields(ME, None, Some("from feed"), None), ME, "iocsync"));
        assert!(!is_owned(fields(ME, Some("iocsync:other"), None, Some("other")), ME, "iocsync"));
        assert!(!is_owned(fields(ME, Some("IOCSYNC:iocsync"), None, None), ME, "iocsync"), "exact");
        assert!(!is_owned(fields(ME, Some(" iocsync:iocsync"), None, None), ME, "iocsync"), "no trim");
        assert!(!is_owned(fields(ME, None, Some("[iocsync:iocsync] in front"), None), ME, "iocsync"));
        // Our marker under another creator: not ours.
        assert!(!is_owned(
            fields("analyst@contoso.example", Some("iocsync:iocsync"), None, None),
            ME,
            "iocsync"
        ));
        assert!(!is_owned(
            OwnershipFields {
                created_by: None,
                external_id: Some("iocsync:iocsync"),
                description: None,
                application: None
            },
            ME,
            "iocsync"
        ));
    }

    #[test]
    fn description_suffix_counts_in_the_limit() {
        assert_eq!(with_description_suffix("Imported", "iocsync", 4000), "Imported [iocsync:iocsync]");
        assert_eq!(
            with_description_suffix("Imported [iocsync:iocsync]", "iocsync", 4000),
            "Imported [iocsync:iocsync]"
        );
        let long = "x".repeat(5000);
        let d = with_description_suffix(&long, "iocsync", 4000);
        assert_eq!(d.chars().count(), 4000);
        assert!(d.ends_with("… [iocsync:iocsync]"), "{}", &d[3970..]);
        let m = Marker::new(MarkerField::Description, "iocsync");
        assert!(m.carried_by(None, Some(&d)));
        assert!(!m.carried_by(Some("iocsync:iocsync"), Some("plain")));
        let m = Marker::new(MarkerField::ExternalId, "iocsync");
        assert!(m.carried_by(Some("iocsync:iocsync"), None));
    }

    #[test]
    fn marker_field_parses_its_config_spelling() {
        assert_eq!("externalId".parse::<MarkerField>(), Ok(MarkerField::ExternalId));
        assert_eq!("description".parse::<MarkerField>(), Ok(MarkerField::Description));
        assert!("application".parse::<MarkerField>().is_err());
        assert_eq!(MarkerField::default().as_str(), "externalId");
    }
}
