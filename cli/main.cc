// certstore: inspect, manage and diagnose certstore stores. Every verb has
// --help with options, exit codes and examples; docs/cli.md has the JSON
// schema.
#include <CLI/CLI.hpp>
#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/doctor.h"
#include "cli/exit_codes.h"
#include "cli/output.h"

namespace {

using namespace certstore::cli;  // NOLINT: the verbs and their flags

std::string Footer(const std::string& examples) {
  return std::string("\n") + kExitCodeHelp + "\n\nExamples:\n" + examples;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "certstore: inspect, manage and diagnose mTLS binding credentials "
      "(certificate chain + private key under an alias) in a certstore store.",
      "certstore"};
  app.footer(Footer(
      "  certstore list\n"
      "  certstore --store memory:,sqlite:/var/lib/app/certstore.db show "
      "'app#att=0'\n"
      "  certstore doctor 'app#att=0' --server-ca /etc/app/token-ca.pem\n"
      "\nThe store comes from --store, then $CERTSTORE_URI, then the JSON "
      "config (--config or $CERTSTORE_CONFIG), then the default "
      "memory:,sqlite:<state dir>/certstore.db."));
  app.require_subcommand(1);
  app.fallthrough();

  GlobalFlags global;
  app.add_option("--store", global.store,
                 "Store URI, layers comma-separated, top first "
                 "(memory:, sqlite:/path, file:/dir, pkcs11:token=...)");
  app.add_option("--config", global.config,
                 "JSON config file: {\"store\": \"<uri>\"} or "
                 "{\"layers\": [...]}");
  app.add_option("--output", global.output, "text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-q,--quiet", global.quiet,
               "Print nothing but errors; the exit code tells");
  app.add_flag("-v,--verbose", global.verbose,
               "Log what the store and client do (to stderr)");

  ListFlags list_flags;
  CLI::App* list = app.add_subcommand(
      "list",
      "List stored entries: alias, thumbprint, not_after, time left, "
      "layer");
  list->add_option("--prefix", list_flags.prefix,
                   "Only aliases starting with this");
  list->add_flag("--all", list_flags.all,
                 "Also entries the store holds but cannot serve (key "
                 "missing or mismatched, unreadable, damaged), with why");
  list->footer(
      Footer("  certstore list\n  certstore --output json list "
             "--prefix 'app'"));

  AliasFlags show_flags;
  CLI::App* show = app.add_subcommand(
      "show",
      "Show an alias's entries: subject, issuer, SANs, validity, key, "
      "chain, thumbprint, metadata");
  show->add_option("alias", show_flags.alias, "Alias")->required();
  show->footer(Footer("  certstore show 'app#att=0'"));

  ImportFlags import_flags;
  CLI::App* import = app.add_subcommand(
      "import",
      "Store a credential from a PEM bundle, a PKCS#12 file, or "
      "--cert and --key files");
  import->alias("put");
  import->add_option("alias", import_flags.alias, "Alias")->required();
  import->add_option("file", import_flags.files.bundle,
                     "PEM bundle (certificates + private key) or PKCS#12");
  import->add_option("--cert", import_flags.files.cert,
                     "PEM certificates, leaf and intermediates");
  import->add_option("--key", import_flags.files.key,
                     "PEM private key (unencrypted)");
  import->add_option("--password-file", import_flags.files.password_file,
                     "PKCS#12 password, in a file readable only by you");
  import->add_option("--endpoint", import_flags.endpoint,
                     "Metadata: the mTLS token endpoint it is for");
  import->add_option("--client-id", import_flags.client_id,
                     "Metadata: canonical client id");
  import->add_option("--tenant-id", import_flags.tenant_id,
                     "Metadata: tenant id");
  import->add_flag("--strict", import_flags.strict,
                   "Refuse a certificate that is expired, not yet valid or "
                   "expires within 24 h (otherwise: a warning)");
  import->footer(Footer(
      "  certstore import app ./app.pem\n"
      "  certstore put app --cert leaf+chain.pem --key key.pem\n"
      "  certstore import app ./app.p12 --password-file ./p12.pass\n"
      "PKCS#11 stores import software keys only with x-allow-import=true in "
      "their URI."));

  ExportFlags export_flags;
  CLI::App* exporter = app.add_subcommand(
      "export",
      "Write an alias's certificate chain as PEM (and its key with "
      "--include-key, when the store allows it)");
  exporter->add_option("alias", export_flags.alias, "Alias")->required();
  exporter->add_option("--out", export_flags.out_file,
                       "File to write (default: stdout, chain only)");
  exporter->add_flag("--include-key", export_flags.include_key,
                     "Also write the private key (needs --out; file 0600; "
                     "token keys never leave the token)");
  exporter->add_flag("--force", export_flags.force,
                     "Replace --out if it exists");
  exporter->footer(
      Footer("  certstore export app > chain.pem\n"
             "  certstore export app --include-key --out app.pem"));

  DeleteFlags delete_flags;
  CLI::App* remove = app.add_subcommand(
      "delete", "Delete every entry of an alias (exit 3 if there was none)");
  remove->add_option("alias", delete_flags.alias, "Alias")->required();
  remove->add_option("--layer", delete_flags.layer,
                     "Only this layer: its index (0 = top) or its URI");
  remove->footer(
      Footer("  certstore delete app\n"
             "  certstore delete app --layer 1"));

  AliasFlags evict_flags;
  CLI::App* evict = app.add_subcommand(
      "evict",
      "Evict an alias from every layer, as the token client does on "
      "a credential failure; 0 removed is not an error");
  evict->add_option("alias", evict_flags.alias, "Alias")->required();
  evict->footer(Footer("  certstore evict 'app#att=0'"));

  GcFlags gc_flags;
  CLI::App* gc = app.add_subcommand(
      "gc",
      "Remove what the store holds but cannot serve (a certificate whose "
      "key was deleted, a file it cannot read), across aliases; never a "
      "servable entry");
  gc->add_option("--prefix", gc_flags.prefix,
                 "Only aliases starting with this");
  gc->add_flag("--dry-run", gc_flags.dry_run, "Only say what would be removed");
  gc->add_flag("--include-foreign", gc_flags.include_foreign,
               "Also broken objects another tool wrote (PKCS#11)");
  gc->footer(Footer("  certstore gc --dry-run\n  certstore gc"));

  AliasFlags probe_flags;
  CLI::App* probe = app.add_subcommand(
      "probe",
      "Prove an alias's key usable now: sign a fresh challenge and "
      "verify it with the certificate");
  probe->add_option("alias", probe_flags.alias, "Alias")->required();
  probe->footer(Footer("  certstore probe 'app#att=0'"));

  TokenFlags token_flags;
  CLI::App* token = app.add_subcommand(
      "token",
      "Get an access token with the token client (mints the binding "
      "if needed); prints its metadata, not the token");
  token
      ->add_option("--scope", token_flags.scope,
                   "IMDS: resource, e.g. https://vault.example (\"/.default\" "
                   "is appended); generic: the OAuth scope as given")
      ->required();
  token->add_option("--issuing-url", token_flags.issuing_url,
                    "IMDS-style issuing endpoint (or $CERTSTORE_ISSUING_URL); "
                    "with --token-endpoint, the issuer that mints (optional)");
  token->add_option("--token-endpoint", token_flags.token_endpoint,
                    "Generic RFC 8705 mode: the token endpoint's https URL "
                    "(client_credentials grant over mTLS)");
  token->add_option("--client-id", token_flags.client_id,
                    "Generic mode: the client_id sent");
  token->add_option(
      "--alias", token_flags.alias,
      "Generic mode: the credential's alias (default: client id)");
  token->add_option("--param", token_flags.params,
                    "Generic mode: another form parameter, name=value "
                    "(repeatable)");
  token->add_option("--server-ca", token_flags.server_ca_file,
                    "PEM trust anchors of the token endpoint (default: system "
                    "roots)");
  token->add_option("--key-type", token_flags.key_type,
                    "Key for a new binding: ec-p256 (default) or rsa-2048");
  token->add_flag("--attestation", token_flags.attestation,
                  "Use the #att=1 binding");
  token->add_flag("--print-token", token_flags.print_token,
                  "Also print the access token (a secret)");
  token->add_option("--timeout", token_flags.timeout,
                    "Deadline of the whole call (default 20s)");
  token->footer(
      Footer("  certstore token --scope https://vault.example --issuing-url "
             "http://169.254.169.254 --server-ca token-ca.pem\n"
             "  certstore token --token-endpoint "
             "https://idp.example/oauth2/token --client-id svc --scope "
             "'api.read' --server-ca idp-ca.pem"));

  NeedsRenewalFlags renewal_flags;
  CLI::App* renewal = app.add_subcommand(
      "needs-renewal",
      "Exit 0 if the alias needs renewal, 1 if it is fresh (like step-cli); "
      "--invert flips them");
  renewal->add_option("alias", renewal_flags.alias, "Alias")->required();
  renewal->add_option("--expires-in", renewal_flags.expires_in,
                      "Renew this long before not_after (e.g. 48h) or after "
                      "this share of the lifetime (e.g. 66%); default: the "
                      "library's renewal point, half-life +/- 10 %");
  renewal->add_flag("--invert", renewal_flags.invert,
                    "Exit 0 when fresh and 1 when renewal is needed (for a "
                    "systemd unit that must run only while fresh)");
  renewal->footer(
      "\nExit codes: 0 needs renewal (with --invert: fresh); 1 fresh (with "
      "--invert: needs renewal); 2 usage; 3 no entry for the alias; 4 "
      "permission or PIN; 5 unavailable.\n\nExamples:\n"
      "  certstore needs-renewal app && renew-app\n"
      "  ExecCondition=certstore -q needs-renewal app --expires-in 48h");

  DoctorFlags doctor_flags;
  CLI::App* doctor = app.add_subcommand(
      "doctor",
      "Walk the path of an mTLS call step by step and say what is "
      "wrong (store, entry, key, chain, endpoint, handshake, token)");
  doctor->add_option("alias", doctor_flags.alias,
                     "Alias to check (without: the store and the endpoint)");
  doctor->add_option("--endpoint", doctor_flags.endpoint,
                     "Token endpoint URL (default: the entry's metadata)");
  doctor->add_option("--server-ca", doctor_flags.server_ca_file,
                     "PEM trust anchors of the endpoint (default: system "
                     "roots)");
  doctor->add_option("--scope", doctor_flags.scope,
                     "Resource for the test token request");
  doctor->add_option("--token-endpoint", doctor_flags.token_endpoint,
                     "Generic RFC 8705 mode: the token endpoint's https URL "
                     "(the test request is client_credentials with "
                     "--client-id and --scope as given)");
  doctor->add_option("--client-id", doctor_flags.client_id,
                     "Generic mode: the client_id of the test request");
  doctor->add_option("--param", doctor_flags.params,
                     "Generic mode: another form parameter, name=value");
  doctor->add_option("--deadline", doctor_flags.deadline,
                     "Bound on the whole diagnosis (default 15s)");
  doctor->add_option("--connect-timeout", doctor_flags.connect_timeout,
                     "TCP connect (default 3s)");
  doctor->add_option("--handshake-timeout", doctor_flags.handshake_timeout,
                     "TLS handshake (default 5s)");
  doctor->footer(Footer(
      "  certstore doctor\n"
      "  certstore doctor 'app#att=0' --server-ca token-ca.pem\n"
      "  certstore doctor 'app#att=0' --endpoint https://login.example:443\n"
      "  certstore doctor svc --token-endpoint https://idp.example/token "
      "--client-id svc --scope orders.read\n"
      "Exit code: that of the first failing check (0 when all pass)."));

  // CLI11 reports an unknown verb as "a subcommand is required": name it.
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--store" || arg == "--config" || arg == "--output") {
      ++i;  // its value
      continue;
    }
    if (!arg.empty() && arg[0] == '-') {
      continue;
    }
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->check_name(arg);
    }
    if (!known) {
      std::fprintf(stderr,
                   "certstore: error: unknown verb \"%s\" (certstore --help "
                   "lists the verbs)\n",
                   PrintableText(arg, false).c_str());
      return kExitUsage;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  Output output(
      global.output == "json" ? Output::Format::kJson : Output::Format::kText,
      global.quiet, global.verbose);
  CommandContext context(global, output);
  // A verb returns its exit code, or the error that ends it.
  absl::StatusOr<int> result = kExitUsage;
  // certstore code returns Status and never throws; this is the last guard
  // for what a library under it might (std::bad_alloc), so that the
  // command reports instead of aborting. Tests fail on its message.
  try {
    if (list->parsed()) {
      result = RunList(context, list_flags);
    } else if (show->parsed()) {
      result = RunShow(context, show_flags);
    } else if (import->parsed()) {
      result = RunImport(context, import_flags);
    } else if (exporter->parsed()) {
      result = RunExport(context, export_flags);
    } else if (remove->parsed()) {
      result = RunDelete(context, delete_flags);
    } else if (evict->parsed()) {
      result = RunEvict(context, evict_flags);
    } else if (gc->parsed()) {
      result = RunGc(context, gc_flags);
    } else if (probe->parsed()) {
      result = RunProbe(context, probe_flags);
    } else if (token->parsed()) {
      result = RunToken(context, token_flags);
    } else if (renewal->parsed()) {
      result = RunNeedsRenewal(context, renewal_flags);
    } else if (doctor->parsed()) {
      result = RunDoctor(context, doctor_flags);
    }
  } catch (const std::exception& e) {
    result = absl::InternalError(
        absl::StrCat("unexpected exception (a certstore bug): ", e.what()));
  }
  return result.ok() ? *result : output.Fail(result.status());
}
