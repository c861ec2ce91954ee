package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretResolve(t *testing.T) {
	const password = "correct horse"
	dir := t.TempDir()
	t.Setenv("VIGIL_TEST_PASSWORD", password)
	t.Setenv("VIGIL_TEST_EMPTY", "")
	emptyFile := writeFile(t, "empty", "\n", 0o600)
	tests := []struct {
		name    string
		secret  Secret
		want    string
		wantErr string
	}{
		{"none", Secret{}, "", ""},
		{"file with newline", Secret{PasswordFile: writeFile(t, "a", password+"\n", 0o600)}, password, ""},
		{"file with CRLF", Secret{PasswordFile: writeFile(t, "b", password+"\r\n", 0o600)}, password, ""},
		{"file without newline", Secret{PasswordFile: writeFile(t, "c", password, 0o600)}, password, ""},
		{"only one newline is removed", Secret{PasswordFile: writeFile(t, "d", password+" \n\n", 0o600)}, password + " \n", ""},
		{"empty file", Secret{PasswordFile: emptyFile}, "", "password file " + emptyFile + " is empty"},
		{"missing file", Secret{PasswordFile: filepath.Join(dir, "missing")}, "",
			"read password file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"directory", Secret{PasswordFile: dir}, "",
			"read password file: read " + dir + ": is a directory"},
		{"variable", Secret{PasswordEnv: "VIGIL_TEST_PASSWORD"}, password, ""},
		{"unset variable", Secret{PasswordEnv: "VIGIL_TEST_UNSET"}, "", "environment variable VIGIL_TEST_UNSET is not set"},
		{"empty variable", Secret{PasswordEnv: "VIGIL_TEST_EMPTY"}, "", "environment variable VIGIL_TEST_EMPTY is empty"},
		{"both", Secret{PasswordFile: writeFile(t, "f", password, 0o600), PasswordEnv: "VIGIL_TEST_PASSWORD"}, "",
			"both password_file and password_env are set: keep one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.secret.Resolve()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tt.want || gotErr != tt.wantErr {
				t.Errorf("Resolve() = %q, %q; want %q, %q", got, gotErr, tt.want, tt.wantErr)
			}
			if strings.Contains(gotErr, password) {
				t.Errorf("the error contains the password: %s", gotErr)
			}
		})
	}
}
