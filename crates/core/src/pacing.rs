//! Client-side call pacing: the pure "when may I call next" arithmetic over sliding windows.
