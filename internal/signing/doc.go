// Package signing turns cosign key pairs into the Signer, Verifier and
// Keyring that stagegate uses to sign the manifests an environment holds and
// to check the signatures CI attaches to a publish.
//
// Everything this package writes is in cosign's own formats, so a consumer
// needs the cosign CLI and an environment's public key, never stagegate code:
//
//   - keys are cosign's encrypted PEM ("ENCRYPTED SIGSTORE PRIVATE KEY",
//     scrypt + secretbox, made by cosign.GenerateKeyPair) and a PKIX PEM
//     public key;
//   - SignBlob returns exactly what `cosign sign-blob --key` prints: the
//     base64 of an ECDSA-P256/SHA-256 signature over the payload bytes;
//   - AttestBlob returns exactly what `cosign attest-blob --key` writes: a
//     DSSE envelope (payloadType application/vnd.in-toto+json) around an
//     in-toto v0.1 statement naming the subject by its SHA-256.
//
// The service never talks to Rekor, Fulcio or TUF, so signatures are not in a
// transparency log and verification must say so. The cosign v2.6.5 command
// lines below run fully offline (set COSIGN_PASSWORD for the commands that
// read a private key); the interop tests in cosign_cli_test.go run them:
//
//	cosign generate-key-pair --output-key-prefix ci
//	cosign sign-blob --yes --key ci.key --tlog-upload=false \
//	    --output-signature manifest.json.sig manifest.json
//	cosign verify-blob --key prod.pub --signature manifest.json.sig \
//	    --insecure-ignore-tlog=true manifest.json
//	cosign attest-blob --yes --key ci.key --tlog-upload=false \
//	    --type https://stagegate.dev/gates/v1 --predicate gates.json \
//	    --output-signature manifest.json.att manifest.json
//	cosign verify-blob-attestation --key prod.pub \
//	    --signature manifest.json.att --type https://stagegate.dev/gates/v1 \
//	    --insecure-ignore-tlog=true manifest.json
//
// The verify commands print a warning that the tlog check was skipped and,
// without network, that the TUF trusted root could not be fetched; both are
// expected and verification still ends with "Verified OK".
//
// Errors follow the house rule of separating a bad signature from a
// technical failure: *VerificationError means the signature, envelope or
// payload does not verify (a gate Failed); *KeyError means a key could not be
// generated, read or decrypted (a gate Errored, or start-up fails).
// ErrBadPassword marks a wrong or missing key password.
package signing
