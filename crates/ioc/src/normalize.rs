//! Normalisation and validation of one value into the form Defender stores, or a reason code.
