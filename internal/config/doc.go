// Package config reads, completes and checks one node's Vigil configuration:
// a single YAML file per node (examples/vigil.yaml documents every key).
//
// Three steps, each with its own entry point:
//
//   - Load reads the file strictly: broken YAML, a value of the wrong type, an
//     unknown or misspelt key and a literal password are reported with their
//     line numbers, because a key the agent silently ignored would leave a
//     safety setting at its default without anyone noticing. Keys the file
//     leaves out take their values from Defaults, the one place where every
//     default is written down and justified; a few (port, superuser) come
//     from the flavor table instead.
//   - Validate reports every problem at once, one entry per problem, each
//     naming the key and what to do about it. Its checks come in two groups:
//     those that look only at the values (required keys, formats, and timing
//     combinations that would break the lease arithmetic of package decision)
//     and those that look at this host (the control binary, password and TLS
//     files, the OS account, the VIP interface). Neither changes anything.
//   - Warnings lists what is allowed but probably not meant, such as a
//     password file other accounts can read.
//
// Passwords never appear in the file nor on the command line: a Secret names
// a file or an environment variable, and Resolve reads it when the agent needs
// it. No error or problem text in this package contains a password.
package config
