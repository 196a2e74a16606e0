// Package holdrpc is holdd's own gRPC API: the protobuf definitions, the
// generated code, the server that answers it from the hold engine and the
// store, and the permission map that says which macaroon may call what.
package holdrpc
