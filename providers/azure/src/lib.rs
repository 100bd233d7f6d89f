//! Azure
