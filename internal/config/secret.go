package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret says where a password is: in a file or in an environment variable,
// never in the configuration itself. Neither set means no password (the
// server authenticates the agent some other way: peer, certificate, trust or
// a .pgpass file).
type Secret struct {
	PasswordFile string `yaml:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
}

// IsSet reports whether a password source is configured.
func (s Secret) IsSet() bool { return s.PasswordFile != "" || s.PasswordEnv != "" }

// Resolve reads the password. Its errors name the file or the variable but
// never contain the password. A single trailing newline is removed from a
// file, since editors and `echo` add one; any other whitespace is part of
// the password.
func (s Secret) Resolve() (string, error) {
	switch {
	case s.PasswordFile != "" && s.PasswordEnv != "":
		return "", errors.New("both password_file and password_env are set: keep one")
	case s.PasswordFile != "":
		data, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		password := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		if password == "" {
			return "", fmt.Errorf("password file %s is empty", s.PasswordFile)
		}
		return password, nil
	case s.PasswordEnv != "":
		password, ok := os.LookupEnv(s.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.PasswordEnv)
		}
		if password == "" {
			return "", fmt.Errorf("environment variable %s is empty", s.PasswordEnv)
		}
		return password, nil
	default:
		return "", nil
	}
}

// Token reads the API's bearer token from api.token_file ("" when none is
// configured). Surrounding whitespace is dropped: a token is never meant
// to contain any, and a stray newline would make every request fail.
func (a API) Token() (string, error) {
	if a.TokenFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read API token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case tok == "":
		return "", fmt.Errorf("API token file %s is empty", a.TokenFile)
	case len(tok) < 16:
		return "", fmt.Errorf("API token in %s is shorter than 16 characters: too easy to guess", a.TokenFile)
	}
	return tok, nil
}
