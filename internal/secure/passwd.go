package secure

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"strings"
)

// Mosquitto 2's password-file hash, as mosquitto_passwd writes it:
// user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>.
const (
	// mosquittoHashID is Mosquitto's id of PBKDF2-SHA512 ($6$ is a single
	// salted SHA512 round, which Mosquitto 2 still reads but no longer writes).
	mosquittoHashID = 7
	// MosquittoIterations is mosquitto_passwd's default count. It is low
	// for PBKDF2 because the broker hashes on every CONNECT; the passwords
	// are 256-bit random tokens, which no offline guessing reaches anyway.
	MosquittoIterations = 101
	// mosquittoSaltLen and mosquittoHashLen are mosquitto_passwd's sizes.
	mosquittoSaltLen = 12
	mosquittoHashLen = sha512.Size
)

// MosquittoPasswdLine returns one line of a Mosquitto 2 password_file
// (without the newline) for user and password, with a fresh random salt.
func MosquittoPasswdLine(user, password string) (string, error) {
	if user == "" || strings.ContainsAny(user, ":\n\r") {
		return "", fmt.Errorf("mosquitto user %q: must be non-empty without ':' or line breaks", user)
	}
	salt := make([]byte, mosquittoSaltLen)
	_, _ = rand.Read(salt)
	return mosquittoLine(user, password, salt, MosquittoIterations)
}

func mosquittoLine(user, password string, salt []byte, iterations int) (string, error) {
	hash, err := pbkdf2.Key(sha512.New, password, salt, iterations, mosquittoHashLen)
	if err != nil {
		return "", fmt.Errorf("hash the password of mosquitto user %q: %w", user, err)
	}
	return fmt.Sprintf("%s:$%d$%d$%s$%s", user, mosquittoHashID, iterations,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(hash)), nil
}

// CheckMosquittoPasswd reports whether line (user:$7$...) holds password,
// the way the broker checks it. Tests and the secrets generator use it to
// know an existing password file still matches the stored passwords.
func CheckMosquittoPasswd(line, password string) bool {
	user, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok {
		return false
	}
	var id, iter int
	fields := strings.Split(rest, "$")
	// "", "7", "101", salt, hash
	if len(fields) != 5 || fields[0] != "" {
		return false
	}
	if _, err := fmt.Sscan(fields[1], &id); err != nil || id != mosquittoHashID {
		return false
	}
	if _, err := fmt.Sscan(fields[2], &iter); err != nil || iter < 1 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(fields[3])
	if err != nil {
		return false
	}
	want, err := mosquittoLine(user, password, salt, iter)
	return err == nil && want == strings.TrimSpace(line)
}
