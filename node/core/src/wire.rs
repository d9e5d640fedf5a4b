//! Domain types as the contract (`tierlink.v1`, `proto/`) carries them: one `From` per message,
//! grouped by the service whose messages they are, so that handlers and clients convert with
//! `.into()` and no conversion is written twice.

mod directory;
mod exchange;
