//! Placeholder root for the workspace test package; see tests/ and examples/.
