//! The plans of the hot statements.
