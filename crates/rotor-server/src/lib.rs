//! rotor-server
