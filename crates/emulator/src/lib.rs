//! Local fake of Entra ID and the Defender for Endpoint Indicators API.
