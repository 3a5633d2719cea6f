//! The topology view (`cell network show`, potnet's `show`).
