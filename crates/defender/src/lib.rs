//! Entra ID token source and Defender Indicators API client.
