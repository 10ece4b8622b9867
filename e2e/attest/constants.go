package attest

// Specification constants. Changing any of them is a wire change.
const (
	// StatementHeader is the first line of a canonical account statement.
	StatementHeader = "securejingle account statement v1"

	// TypeSelf is the attestation type of the account key's own SSHSIG
	// signature over the statement (namespace identity.NamespaceStatement).
	TypeSelf = "self"
	// TypeOpenPGP is the attestation type of an ASCII-armored OpenPGP
	// detached signature over the statement.
	TypeOpenPGP = "openpgp"
	// TypeX509CMS is the attestation type of a DER CMS SignedData detached
	// signature over the statement, optionally embedding the signer chain.
	TypeX509CMS = "x509-cms"

	// LabelSAS is the HKDF-SHA256 info label of the short authentication
	// string of two accounts.
	LabelSAS = "securejingle/v1/sas"

	// VerifyQueryType is the RFC 5122 query type of a [VerifyURI].
	VerifyQueryType = "sj-verify"
)

// Implementation constants.
const (
	// MaxTypeLen is the longest attestation type token accepted.
	MaxTypeLen = 32
	// MaxAttestationSize is the largest attestation payload looked at. Larger
	// payloads fail without being parsed or rendered.
	MaxAttestationSize = 64 << 10
	// MaxQRPayload is the longest payload [RenderQR] accepts. A
	// [VerifyURI] is well under it; it keeps the code small enough for a
	// terminal.
	MaxQRPayload = 512

	// dateFormat is how validity dates are written in a Result's Detail.
	dateFormat = "2006-01-02 15:04:05 UTC"

	// MaxResultNames is the most signer names a [Result] reports.
	MaxResultNames = 8

	// maxJIDPartLen bounds a localpart or domainpart in bytes (RFC 7622).
	maxJIDPartLen = 1023

	// sasGroups and sasGroupDigits shape the short authentication string:
	// 6 groups of 5 digits, about 99.7 bits (docs/protocol.md section 9.7
	// says why not fewer).
	//
	// sasTime and sasMemory (KiB) are the Argon2id cost of one SAS: a
	// collision between two keys an attacker chooses costs about 2^50
	// evaluations, each needing 64 MiB of memory.
	sasTime        = 2
	sasMemory      = 64 * 1024
	sasGroups      = 6
	sasGroupDigits = 5
	// sasModulus is 10^sasGroupDigits.
	sasModulus = 100000
	// sasLimit is the largest multiple of sasModulus not above 2^32; 32-bit
	// values at or above it are rejected so every group is uniform.
	sasLimit = (1 << 32) / sasModulus * sasModulus

	// pemTypeUnknown is the PEM type used to show an attestation that is
	// not printable text.
	pemTypeUnknown = "SECUREJINGLE ATTESTATION"
)
