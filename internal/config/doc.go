// Package config reads, completes and checks Vigil's configuration files:
// one YAML file per node for the agent (examples/vigil.yaml documents every
// key), and one for the Pgpool command (Pgpool; the migration guide shows a
// complete file). The two share their common sections (Database, VIP,
// StepTimeouts, SSH, the trusted IPs), so a setting has one name, one
// default and one check in both, and they are read by one loader.
//
// Three steps, each with its own entry point:
//
//   - Load (LoadPgpool) reads the file strictly: broken YAML, a value of the
//     wrong type, an unknown or misspelt key and a literal password are
//     reported with the file and line, because a key the agent silently
//     ignored would leave a safety setting at its default without anyone
//     noticing. A key renamed to the shared vocabulary is still read under
//     its old name for one release, with a warning naming the new one. Keys
//     the file leaves out take their values from Defaults (PgpoolDefaults),
//     the one place where every default is written down and justified; a
//     few (port, superuser) come from the flavor table instead.
//   - Validate reports every problem at once, one entry per problem, each
//     naming the key and what to do about it. Its checks come in two groups:
//     those that look only at the values (required keys, formats, and timing
//     combinations that would break the lease arithmetic of package decision)
//     and those that look at this host (the control binary, password and TLS
//     files, the OS account, the VIP interface). Neither changes anything.
//   - Warnings lists what is allowed but probably not meant, such as a
//     password file other accounts can read or a key's old name.
//
// Passwords never appear in the file nor on the command line: a Secret names
// a file or an environment variable, and Resolve reads it when the agent needs
// it. No error or problem text in this package contains a password.
package config
