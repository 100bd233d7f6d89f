//! What offsite's AWS adapters share, so that neither leans on the other (building the EBS
//! adapter alone builds no S3 SDK): the SDK configuration every AWS client uses, and how a
//! failure of the credential chain reads.

mod config;
mod errors;

pub use config::sdk_config;
pub use errors::{credentials_failed, sdk_words, EXPIRED_HINT, NO_CREDENTIALS_HINT, REFUSED_HINT};
