package apiserver

// LockedMessage is every answer of a manager whose KEK is still sealed by
// the autolock unlock key.
const LockedMessage = "locked: run warren cluster unlock"
