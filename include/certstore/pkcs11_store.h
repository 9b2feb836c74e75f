/// \file
/// Pkcs11Store: binding credentials on a PKCS#11 token (via libp11), with
/// keys generated on the token and never extractable.
///
/// Configured by an RFC 7512 URI
/// `pkcs11:token=LABEL[;serial=…]?module-path=SO&pin-source=file:PATH`
/// (or `module-name=NAME` instead of module-path), or by Pkcs11StoreOptions.
/// The PIN comes only from a pin-source file (0600, owned by the user; one
/// trailing newline stripped) or a callback — never from the URI, and it
/// never appears in a message.
///
/// What lives on the token (see docs/pkcs11-store.md): per key, a private
/// key (CKA_SENSITIVE, not extractable) and its public key, labelled with the
/// alias and a random 16-byte CKA_ID; per entry, a CKO_DATA object (label =
/// alias, CKA_APPLICATION "certstore", the chain's intermediates and the
/// metadata) and the leaf CKO_CERTIFICATE with the key's CKA_ID, written last.
/// An entry is a certificate whose CKA_ID has a private key; keys and
/// certificates pair by CKA_ID, never by label alone, so key pairs written by
/// other tools (pkcs11-tool) are found too.
///
/// Not an error: Find of an alias with no servable entry is NotFound;
/// DeleteAllForAlias of an unknown alias returns 0. CreateKey writes the key
/// to the token at once (that is where keys live); a key that is never Put
/// stays on the token, labelled with its alias, until DeleteAllForAlias.
#ifndef CERTSTORE_PKCS11_STORE_H_
#define CERTSTORE_PKCS11_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/export.h"

namespace certstore {

struct Pkcs11StoreOptions {
  /// Absolute path of the PKCS#11 module, e.g.
  /// /usr/lib/softhsm/libsofthsm2.so. Required.
  std::string module_path;

  /// The token's label (CKA_LABEL of the token, at most 32 bytes). Required.
  std::string token_label;

  /// Where the user PIN comes from: exactly one of the two.
  /// A file readable only by its owner (the process's user); its content is
  /// the PIN, one trailing "\n" (or "\r\n") removed.
  std::string pin_file;
  /// Or a callback returning the PIN (called once, at Open).
  std::function<absl::StatusOr<std::string>()> pin_callback;

  /// Put of an entry whose key is not on this token (a software key, or a
  /// key from another store) copies the key onto the token as a sensitive,
  /// non-extractable private key when true; FailedPrecondition naming this
  /// option otherwise.
  bool allow_import = false;

  /// True: certstore calls C_Initialize when it loads the module (through
  /// libp11) and C_Finalize when the last store and key on the module are
  /// gone, or at process exit. False: the embedding application calls
  /// C_Initialize before opening a store and C_Finalize after the last one is
  /// gone; certstore calls neither (and cannot re-initialise the module to
  /// find a re-created token).
  bool initialize_module = true;

  /// A token that disappeared (removed, deleted, re-initialised) is looked
  /// for again at most this often; looking re-initialises the module, which
  /// invalidates the sessions of every store on it (they reconnect).
  absl::Duration token_retry_interval = absl::Seconds(1);

  /// Find serves cached entries of an alias (their object handles checked on
  /// every use, so deletions by other processes are seen at once). Entries
  /// another process adds to an alias this store has cached are seen when the
  /// cached ones stop being servable, or after this long.
  absl::Duration cache_ttl = absl::InfiniteDuration();

  /// Where LockAlias keeps its cross-process lock files (one per token and
  /// alias, 0600; the directory is created 0700 and must be private to this
  /// user). Every process that mints on the token must use the same one.
  /// Empty: `STATE_DIR/pkcs11-locks`, STATE_DIR being
  /// `$XDG_STATE_HOME/certstore` or `~/.local/state/certstore`.
  std::string lock_dir;

  /// Zero (default): LockAlias excludes the processes of this host only
  /// (lock_dir). Positive: it also takes a lease on the token — a data
  /// object labelled with the alias (application "certstore-lease") — so
  /// that hosts sharing the token through a network module
  /// (p11-kit-client.so) mint once between them. A lease whose holder
  /// does not release it (a crash) is taken over after this long: make it
  /// longer than a mint (key generation + issue + Put), and keep the
  /// hosts' clocks in sync to well within it. See docs/fleet.md.
  absl::Duration token_lease = absl::ZeroDuration();

  /// Time source for selection; null means Clock::System().
  const Clock* clock = nullptr;
};

/// Parses an RFC 7512 PKCS#11 URI into options:
///   path attributes: token (required), serial; manufacturer, model,
///     library-*, slot-*, object, id and type are accepted and ignored (the
///     alias selects objects);
///   query attributes: module-path or module-name (a module file name looked
///     up in the usual PKCS#11 module directories), `pin-source=file:PATH`,
///     `x-allow-import=true|false` (a vendor attribute: allow_import below),
///     `x-lock-dir=ABSOLUTE_PATH` (a vendor attribute: lock_dir below),
///     `x-token-lease=SECONDS` (1 to 3600; token_lease below).
/// Values are percent-decoded. pin-value is refused (a PIN must not live in a
/// URI) and its value never appears in the error. InvalidArgument naming the
/// URI part and what was expected.
CERTSTORE_EXPORT absl::StatusOr<Pkcs11StoreOptions> ParsePkcs11Uri(
    absl::string_view uri);

/// Opens the token: loads the module (shared by every store on it in this
/// process), finds the token by label, opens a session and logs in.
/// InvalidArgument naming the module path when it does not exist or is not
/// a PKCS#11 module, or for missing options; PermissionDenied naming the
/// token (never the PIN) for a wrong PIN or an unsafe PIN file, or naming
/// the lock directory when others could write it (InvalidArgument when it
/// is not absolute; FailedPrecondition when it defaults and neither
/// XDG_STATE_HOME nor HOME is set); Unavailable when the token is absent.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<CertStore>> OpenPkcs11Store(
    const Pkcs11StoreOptions& options);

}  // namespace certstore

#endif  // CERTSTORE_PKCS11_STORE_H_
