#include "cli/commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "api/internal/posix_status.h"
#include "certstore/chain.h"
#include "certstore/clock.h"
#include "certstore/errors.h"
#include "certstore/mint_coordinator.h"
#include "certstore/open_store.h"
#include "certstore/status_macros.h"
#include "certstore/token_client.h"
#include "cli/certificate_details.h"
#include "cli/exit_codes.h"
#include "client/rejection_ledger.h"

namespace certstore::cli {
namespace {

using nlohmann::json;

FindOptions AnyValidNow() {
  FindOptions options;
  options.min_remaining = absl::ZeroDuration();
  return options;
}

// Every stored entry of exactly `alias` (List filters by prefix).
absl::StatusOr<std::vector<EntryInfo>> EntriesOf(CertStore& store,
                                                 const std::string& alias) {
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(alias));
  ListOptions options;
  options.alias_prefix = alias;
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<EntryInfo> all, store.List(options));
  std::vector<EntryInfo> exact;
  for (EntryInfo& info : all) {
    if (info.alias == alias) {
      exact.push_back(std::move(info));
    }
  }
  return exact;
}

// Why `alias` shows no entry: NotFound only when the store says so; an
// entry whose files are damaged or refused is that error (DataLoss,
// PermissionDenied…), never "no entry".
absl::Status NoEntry(CertStore& store, const std::string& alias) {
  absl::StatusOr<std::shared_ptr<const Entry>> found =
      store.Find(alias, AnyValidNow());
  if (!found.ok() && found.status().code() != absl::StatusCode::kNotFound) {
    return found.status();
  }
  return absl::NotFoundError(
      absl::StrCat(store.Name(), ": no entry for alias ", QuoteAlias(alias)));
}

// The first layer of `store` that cannot list (the layered store lists
// around it, as it serves around it): `list` prints what the others hold
// and then fails with this, so that damage never passes as "no entries".
absl::Status UnlistableLayer(const LayeredStore& store,
                             const ListOptions& options) {
  for (CertStore* layer : store.layers()) {
    absl::StatusOr<std::vector<EntryInfo>> infos = layer->List(options);
    if (!infos.ok()) {
      return WithContext(infos.status(),
                         absl::StrCat("layer ", layer->Name(), " cannot list"));
    }
  }
  return absl::OkStatus();
}

json InfoJson(const EntryInfo& info, absl::Time now) {
  json object = {{"alias", info.alias},
                 {"thumbprint", info.thumbprint},
                 {"not_before", Rfc3339(info.not_before)},
                 {"not_after", Rfc3339(info.not_after)},
                 {"seconds_left", absl::ToInt64Seconds(info.not_after - now)},
                 {"created_at", Rfc3339(info.created_at)},
                 {"chain_length", info.chain_length},
                 {"key_algorithm", info.key_algorithm},
                 {"key_location", info.key_location},
                 {"layer", info.store}};
  if (!info.certificate_location.empty()) {
    object["certificate_location"] = info.certificate_location;
  }
  if (!info.problem.empty()) {
    object["problem"] = info.problem;
    object["foreign"] = info.foreign;
  }
  return object;
}

// Writes `content` to a new file (or replaces it with `force`), mode `mode`,
// refusing symlinks.
absl::Status WriteOutputFile(const std::string& path,
                             const std::string& content, mode_t mode,
                             bool force) {
  int flags =
      O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL);
  int fd = open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("output file ", path, " exists (--force replaces it)"));
    }
    return internal::ErrnoStatus(errno, absl::StrCat("output file ", path));
  }
  // An existing file keeps its mode on O_TRUNC: set ours.
  absl::Status status;
  if (fchmod(fd, mode) != 0) {
    status = internal::ErrnoStatus(errno, absl::StrCat("chmod ", path));
  }
  size_t done = 0;
  while (status.ok() && done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      status = internal::ErrnoStatus(errno, absl::StrCat("write ", path));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (status.ok() && fsync(fd) != 0) {
    status = internal::ErrnoStatus(errno, absl::StrCat("fsync ", path));
  }
  close(fd);
  return status;
}

absl::StatusOr<KeySpec> ParseKeyType(const std::string& name) {
  KeySpec spec;
  if (name == "ec-p256") {
    spec.type = KeyType::kEcP256;
  } else if (name == "rsa-2048") {
    spec.type = KeyType::kRsa2048;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--key-type \"", name, "\": expected ec-p256 or rsa-2048"));
  }
  return spec;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Entry>> FindValidNow(
    LayeredStore& store, const std::string& alias) {
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(alias));
  FindOptions valid_now;
  valid_now.min_remaining = absl::ZeroDuration();
  absl::Status refused;
  for (CertStore* layer : store.layers()) {
    absl::StatusOr<std::shared_ptr<const Entry>> found =
        layer->Find(alias, valid_now);
    if (found.ok()) {
      return found;
    }
    if (!absl::IsNotFound(found.status()) && refused.ok()) {
      refused = found.status();
    }
  }
  if (!refused.ok()) {
    return refused;
  }
  const absl::Time now = Clock::System()->Now();
  ListOptions list;
  list.alias_prefix = alias;
  absl::StatusOr<std::vector<EntryInfo>> infos = store.List(list);
  for (const EntryInfo& info : infos.ok() ? *infos : std::vector<EntryInfo>{}) {
    if (info.alias != alias) {
      continue;
    }
    if (now >= info.not_after) {
      return absl::OutOfRangeError(absl::StrCat(
          "alias ", QuoteAlias(alias), ": ", info.thumbprint, " expired at ",
          Rfc3339(info.not_after), " (", FormatTimeLeft(info.not_after - now),
          "); the server would refuse it (certificate_expired) and the token "
          "client mints a new one"));
    }
    if (now < info.not_before) {
      return absl::OutOfRangeError(
          absl::StrCat("alias ", QuoteAlias(alias), ": ", info.thumbprint,
                       " is not valid before ", Rfc3339(info.not_before),
                       " (is the clock right?)"));
    }
    return absl::DataLossError(absl::StrCat(
        info.store, ": alias ", QuoteAlias(alias), ": ", info.thumbprint,
        " is listed but not served: damaged, or its key is missing or does "
        "not match its certificate"));
  }
  return absl::NotFoundError(absl::StrCat(
      store.Name(), ": no entry for alias ", QuoteAlias(alias),
      " (a certificate whose key is missing or does not match counts as "
      "none; the next token request mints a new binding)"));
}

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& value,
                                                 absl::string_view flag) {
  absl::Duration d;
  absl::string_view days = value;
  int64_t n = 0;
  // Certificates live days: "7d" too, which absl::ParseDuration lacks.
  const bool parsed =
      absl::ConsumeSuffix(&days, "d") && absl::SimpleAtoi(days, &n)
          ? (d = absl::Hours(24 * n), true)
          : absl::ParseDuration(value, &d);
  if (!parsed || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " \"", value,
                     "\": expected a positive duration such as 500ms, 10s, "
                     "24h, 7d"));
  }
  return d;
}

absl::StatusOr<LayeredStore*> CommandContext::Store() {
  if (store_ != nullptr) {
    return store_.get();
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::string uri,
                             ResolveStoreUri(flags_.store, flags_.config));
  redacted_uri_ = RedactStoreUri(uri);
  out_.Verbose(absl::StrCat("store: ", redacted_uri_));
  OpenStoreOptions options;
  Output* out = &out_;
  options.log = [out](LogLevel level, absl::string_view component,
                      absl::string_view message) {
    out->Verbose(
        absl::StrCat(LogLevelName(level), " ", component, ": ", message));
  };
  absl::StatusOr<std::unique_ptr<LayeredStore>> store = OpenStore(uri, options);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("cannot open store ", redacted_uri_, ": ",
                                     store.status().message()));
  }
  store_ = *std::move(store);
  return store_.get();
}

namespace {

// What `list` left out: a warning on stderr, or with --output json a line
// of kind "not_shown" (stderr carries only errors there).
void NoteHidden(Output& out, int hidden) {
  if (hidden == 0) {
    return;
  }
  if (out.json()) {
    out.Emit("not_shown", {{"unservable", hidden}}, "");
    return;
  }
  out.Warn(absl::StrCat(hidden, " unservable entr", hidden == 1 ? "y" : "ies",
                        " not shown: `certstore list --all` shows why, "
                        "`certstore gc` removes them"));
}

}  // namespace

absl::StatusOr<int> RunList(CommandContext& context, const ListFlags& flags) {
  Output& out = context.out();
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  ListOptions options;
  options.alias_prefix = flags.prefix;
  options.include_broken = true;  // counted even when not shown
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<EntryInfo> listed,
                             store->List(options));
  const absl::Status unlistable = UnlistableLayer(*store, options);
  const absl::Time now = Clock::System()->Now();
  std::vector<EntryInfo> entries;
  int hidden = 0;
  for (EntryInfo& info : listed) {
    if (info.problem.empty() || flags.all) {
      entries.push_back(std::move(info));
    } else {
      ++hidden;
    }
  }
  if (entries.empty()) {
    CERTSTORE_RETURN_IF_ERROR(unlistable);
    out.Note(absl::StrCat(
        "no entries in ", store->Name(),
        flags.prefix.empty()
            ? ""
            : absl::StrCat(" with prefix ", QuoteAlias(flags.prefix))));
    NoteHidden(out, hidden);
    return kExitOk;
  }
  out.Note(flags.all ? "ALIAS\tTHUMBPRINT\tNOT_AFTER\tLEFT\tLAYER\tPROBLEM"
                     : "ALIAS\tTHUMBPRINT\tNOT_AFTER\tLEFT\tLAYER");
  for (const EntryInfo& info : entries) {
    std::string line =
        absl::StrCat(QuoteAlias(info.alias), "\t", info.thumbprint, "\t",
                     Rfc3339(info.not_after), "\t",
                     FormatTimeLeft(info.not_after - now), "\t", info.store);
    if (flags.all) {
      absl::StrAppend(&line, "\t",
                      info.problem.empty()
                          ? "-"
                          : absl::StrCat(PrintableText(info.problem, false),
                                         info.foreign ? " (foreign)" : ""));
    }
    out.Emit("entry", InfoJson(info, now), line);
  }
  NoteHidden(out, hidden);
  CERTSTORE_RETURN_IF_ERROR(unlistable);
  return kExitOk;
}

absl::StatusOr<int> RunGc(CommandContext& context, const GcFlags& flags) {
  Output& out = context.out();
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  ListOptions options;
  options.alias_prefix = flags.prefix;
  options.include_broken = true;
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<EntryInfo> listed,
                             store->List(options));
  const absl::Time now = Clock::System()->Now();
  std::vector<std::string> aliases;  // listed by alias: each once, in order
  int kept_foreign = 0;
  int candidates = 0;
  for (const EntryInfo& info : listed) {
    if (info.problem.empty()) {
      continue;
    }
    if (info.foreign && !flags.include_foreign) {
      ++kept_foreign;
      continue;
    }
    ++candidates;
    json object = InfoJson(info, now);
    object["dry_run"] = flags.dry_run;
    out.Emit("unservable", object,
             absl::StrCat(flags.dry_run ? "would remove " : "removing ",
                          QuoteAlias(info.alias), " ", info.thumbprint, " (",
                          PrintableText(info.problem, false), ") from ",
                          info.store));
    if (aliases.empty() || aliases.back() != info.alias) {
      aliases.push_back(info.alias);
    }
  }
  int removed = 0;
  if (!flags.dry_run) {
    RemoveBrokenOptions remove;
    remove.include_foreign = flags.include_foreign;
    for (const std::string& alias : aliases) {
      if (alias.empty()) {
        continue;  // a directory whose name names no alias: by hand
      }
      CERTSTORE_ASSIGN_OR_RETURN(int n, store->RemoveBroken(alias, remove));
      removed += n;
    }
  }
  json summary = {{"unservable", candidates},
                  {"removed", removed},
                  {"kept_foreign", kept_foreign},
                  {"dry_run", flags.dry_run}};
  out.Emit(
      "gc", summary,
      absl::StrCat(
          flags.dry_run
              ? absl::StrCat(candidates, " unservable entr",
                             candidates == 1 ? "y" : "ies", " would be removed")
              : absl::StrCat(removed, " unservable entr",
                             removed == 1 ? "y" : "ies", " removed"),
          kept_foreign > 0 ? absl::StrCat("; ", kept_foreign,
                                          " written by another tool kept "
                                          "(--include-foreign removes them)")
                           : ""));
  return kExitOk;
}

absl::StatusOr<int> RunShow(CommandContext& context, const AliasFlags& flags) {
  Output& out = context.out();
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * opened, context.Store());
  LayeredStore& store = *opened;
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<EntryInfo> entries,
                             EntriesOf(store, flags.alias));
  if (entries.empty()) {
    return NoEntry(store, flags.alias);
  }
  const absl::Time now = Clock::System()->Now();
  absl::StatusOr<std::shared_ptr<const Entry>> best =
      store.Find(flags.alias, AnyValidNow());
  if (!best.ok() && best.status().code() != absl::StatusCode::kNotFound) {
    return best.status();
  }
  const bool servable = store.Find(flags.alias).ok();
  for (const EntryInfo& info : entries) {
    const bool is_best = best.ok() && (*best)->thumbprint() == info.thumbprint;
    json object = InfoJson(info, now);
    object["current"] = is_best;
    std::string text = absl::StrCat(
        "alias:        ", QuoteAlias(info.alias), "\n",
        "thumbprint:   ", info.thumbprint, "\n",
        "validity:     ", Rfc3339(info.not_before), " .. ",
        Rfc3339(info.not_after), " (", FormatTimeLeft(info.not_after - now),
        ")\n", "key:          ", info.key_algorithm, ", ", info.key_location,
        "\n",
        info.certificate_location.empty()
            ? ""
            : absl::StrCat("certificate:  ", info.certificate_location, "\n"),
        "layer:        ", info.store, "\n",
        "created:      ", Rfc3339(info.created_at), "\n");
    if (is_best) {
      const Entry& entry = **best;
      absl::StatusOr<CertificateDetails> leaf =
          DescribeCertificate(entry.chain_der()[0],
                              absl::StrCat("leaf of ", QuoteAlias(info.alias)));
      if (!leaf.ok()) {
        return leaf.status();
      }
      std::vector<std::string> chain_subjects;
      for (size_t i = 1; i < entry.chain_der().size(); ++i) {
        absl::StatusOr<CertificateDetails> cert = DescribeCertificate(
            entry.chain_der()[i],
            absl::StrCat("certificate ", i, " of ", QuoteAlias(info.alias)));
        chain_subjects.push_back(cert.ok() ? cert->subject : "(undecodable)");
      }
      object["subject"] = leaf->subject;
      object["issuer"] = leaf->issuer;
      object["serial"] = leaf->serial;
      object["subject_alt_names"] = leaf->subject_alt_names;
      object["signature_algorithm"] = leaf->signature_algorithm;
      object["chain_subjects"] = chain_subjects;
      object["servable"] = servable;
      object["metadata"] = {{"endpoint", entry.metadata().endpoint},
                            {"client_id", entry.metadata().client_id},
                            {"tenant_id", entry.metadata().tenant_id}};
      absl::StrAppend(
          &text, "subject:      ", leaf->subject, "\n",
          "issuer:       ", leaf->issuer, "\n", "SANs:         ",
          leaf->subject_alt_names.empty()
              ? "(none)"
              : absl::StrJoin(leaf->subject_alt_names, ", "),
          "\n", "serial:       ", leaf->serial, "\n",
          "chain:        ", entry.chain_der().size(), " certificate(s)",
          chain_subjects.empty()
              ? ""
              : absl::StrCat(": leaf, ", absl::StrJoin(chain_subjects, ", ")),
          "\n", "endpoint:     ", entry.metadata().endpoint, "\n",
          "client_id:    ", entry.metadata().client_id, "\n",
          "tenant_id:    ", entry.metadata().tenant_id, "\n", "servable:     ",
          servable ? "yes"
                   : "no: less than 24h left (the token client mints "
                     "a new one)",
          "\n");
    } else {
      absl::StrAppend(&text, "servable:     no (",
                      now < info.not_before ? "not yet valid" : "expired",
                      "; an older or unusable entry)\n");
    }
    out.Emit("entry_details", object, text);
  }
  return kExitOk;
}

namespace {

// What an operator should hear about a certificate being imported: not
// usable now, or not for long (the token client serves nothing with less
// than 24 h left).
std::vector<std::string> ValidityWarnings(const Entry& entry, absl::Time now) {
  std::vector<std::string> warnings;
  if (entry.not_after() <= now) {
    warnings.push_back(
        absl::StrCat("the certificate expired at ", Rfc3339(entry.not_after()),
                     " (", FormatTimeLeft(entry.not_after() - now), ")"));
  } else if (entry.not_before() > now) {
    warnings.push_back(absl::StrCat("the certificate is not valid before ",
                                    Rfc3339(entry.not_before())));
  } else if (entry.not_after() - now < absl::Hours(24)) {
    warnings.push_back(absl::StrCat(
        "the certificate expires in ", FormatTimeLeft(entry.not_after() - now),
        " (", Rfc3339(entry.not_after()),
        "): less than the 24 h a token client needs to serve it"));
  }
  return warnings;
}

}  // namespace

absl::StatusOr<int> RunImport(CommandContext& context,
                              const ImportFlags& flags) {
  Output& out = context.out();
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(flags.alias));
  CERTSTORE_ASSIGN_OR_RETURN(Credential credential,
                             ReadCredential(flags.files));
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  EntryParts parts;
  parts.alias = flags.alias;
  parts.chain_der = std::move(credential.chain_der);
  parts.key = std::move(credential.key);
  parts.metadata.endpoint = flags.endpoint;
  parts.metadata.client_id = flags.client_id;
  parts.metadata.tenant_id = flags.tenant_id;
  parts.created_at = Clock::System()->Now();
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> entry,
                             Entry::Create(std::move(parts)));
  const std::vector<std::string> warnings =
      ValidityWarnings(*entry, Clock::System()->Now());
  if (!warnings.empty() && flags.strict) {
    return absl::InvalidArgumentError(
        absl::StrCat("not imported (--strict): ", QuoteAlias(flags.alias), ": ",
                     absl::StrJoin(warnings, "; ")));
  }
  CERTSTORE_RETURN_IF_ERROR(store->Put(entry));
  for (const std::string& warning : warnings) {
    out.Warn(absl::StrCat(QuoteAlias(flags.alias), ": ", warning));
  }
  const Entry& e = *entry;
  out.Emit(
      "imported",
      {{"alias", e.alias()},
       {"thumbprint", e.thumbprint()},
       {"not_after", Rfc3339(e.not_after())},
       {"chain_length", e.chain_der().size()},
       {"store", store->Name()},
       {"warnings", warnings}},
      absl::StrCat("imported ", QuoteAlias(e.alias()), " (", e.thumbprint(),
                   ", ", e.chain_der().size(), " certificate(s), not after ",
                   Rfc3339(e.not_after()), ") into ", store->Name()));
  return kExitOk;
}

absl::StatusOr<int> RunExport(CommandContext& context,
                              const ExportFlags& flags) {
  Output& out = context.out();
  if (flags.include_key && flags.out_file.empty()) {
    return absl::InvalidArgumentError(
        "--include-key needs --out FILE: key bytes are never printed");
  }
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> found,
                             FindValidNow(*store, flags.alias));
  const Entry& entry = *found;
  std::string pem = DerChainToPem(entry.chain_der());
  if (flags.include_key) {
    absl::StatusOr<std::string> key_pem = KeyToPem(*entry.key());
    if (!key_pem.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("the key of ", QuoteAlias(entry.alias()), " lives at ",
                       entry.key()->location(), " and cannot leave it (",
                       key_pem.status().message(), ")"));
    }
    pem += *key_pem;
    OPENSSL_cleanse(&(*key_pem)[0], key_pem->size());
  }
  json object = {{"alias", entry.alias()},
                 {"thumbprint", entry.thumbprint()},
                 {"chain_length", entry.chain_der().size()},
                 {"includes_key", flags.include_key}};
  if (flags.out_file.empty()) {
    if (out.json()) {
      object["chain_pem"] = pem;
      out.Emit("export", object, "");
    } else {
      std::fwrite(pem.data(), 1, pem.size(), stdout);
    }
    return kExitOk;
  }
  absl::Status written = WriteOutputFile(
      flags.out_file, pem, flags.include_key ? 0600 : 0644, flags.force);
  if (flags.include_key) {
    OPENSSL_cleanse(&pem[0], pem.size());
  }
  if (!written.ok()) {
    return written;
  }
  object["file"] = flags.out_file;
  out.Emit(
      "export", object,
      absl::StrCat("exported ", entry.chain_der().size(), " certificate(s)",
                   flags.include_key ? " and the key" : "", " of ",
                   QuoteAlias(entry.alias()), " to ", flags.out_file));
  return kExitOk;
}

absl::StatusOr<int> RunDelete(CommandContext& context,
                              const DeleteFlags& flags) {
  Output& out = context.out();
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * opened, context.Store());
  LayeredStore& store = *opened;
  CertStore* target = &store;
  if (!flags.layer.empty()) {
    target = nullptr;
    const std::vector<CertStore*>& layers = store.layers();
    size_t index = 0;
    if (absl::SimpleAtoi(flags.layer, &index) && index < layers.size()) {
      target = layers[index];
    }
    for (CertStore* layer : layers) {
      if (layer->Name() == flags.layer) {
        target = layer;
      }
    }
    if (target == nullptr) {
      std::vector<std::string> names;
      for (size_t i = 0; i < layers.size(); ++i) {
        names.push_back(absl::StrCat(i, "=", layers[i]->Name()));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("--layer \"", flags.layer, "\" is not a layer of ",
                       store.Name(), " (", absl::StrJoin(names, ", "), ")"));
    }
  }
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(flags.alias));
  CERTSTORE_ASSIGN_OR_RETURN(int removed,
                             target->DeleteAllForAlias(flags.alias));
  if (removed == 0) {
    return NoEntry(*target, flags.alias);
  }
  out.Emit(
      "deleted",
      {{"alias", flags.alias}, {"removed", removed}, {"store", target->Name()}},
      absl::StrCat("deleted ", removed, " entr", removed == 1 ? "y" : "ies",
                   " of ", QuoteAlias(flags.alias), " from ", target->Name()));
  return kExitOk;
}

absl::StatusOr<int> RunEvict(CommandContext& context, const AliasFlags& flags) {
  Output& out = context.out();
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(flags.alias));
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * opened, context.Store());
  // Layer by layer, so the operator sees where the binding was; the same
  // removal the token client makes on a credential failure.
  json per_layer = json::array();
  std::vector<std::string> lines;
  int total = 0;
  for (CertStore* layer : opened->layers()) {
    absl::StatusOr<int> removed = layer->DeleteAllForAlias(flags.alias);
    if (!removed.ok()) {
      return removed.status();
    }
    total += *removed;
    per_layer.push_back({{"store", layer->Name()}, {"removed", *removed}});
    lines.push_back(absl::StrCat("  ", layer->Name(), ": ", *removed));
  }
  // An operator's evict also ends a rejection backoff: the next token
  // request may mint at once.
  client_internal::RejectionLedger(opened->Name()).Clear(flags.alias);
  out.Emit("evicted",
           {{"alias", flags.alias}, {"removed", total}, {"layers", per_layer}},
           absl::StrCat("evicted ", QuoteAlias(flags.alias),
                        " from every layer (", total,
                        " removed; the next token request mints a new "
                        "binding)\n",
                        absl::StrJoin(lines, "\n")));
  return kExitOk;
}

absl::StatusOr<int> RunProbe(CommandContext& context, const AliasFlags& flags) {
  Output& out = context.out();
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> found,
                             FindValidNow(*store, flags.alias));
  const Entry& entry = *found;
  const absl::Time start = absl::Now();
  absl::Status probe = store->ProbeKey(entry);
  const absl::Duration elapsed = absl::Now() - start;
  json object = {{"alias", entry.alias()},
                 {"thumbprint", entry.thumbprint()},
                 {"key_algorithm", entry.key()->algorithm()},
                 {"key_location", entry.key()->location()},
                 {"ok", probe.ok()},
                 {"elapsed_ms", absl::ToDoubleMilliseconds(elapsed)}};
  if (!probe.ok()) {
    object["error"] = std::string(probe.message());
    out.Emit("probe", object,
             absl::StrCat("✗ key of ", QuoteAlias(entry.alias()), " (",
                          entry.thumbprint(), ") cannot sign: ",
                          probe.message(), " [", FormatElapsed(elapsed), "]"));
    return ExitCodeFor(probe);
  }
  out.Emit("probe", object,
           absl::StrCat("✓ key of ", QuoteAlias(entry.alias()), " (",
                        entry.thumbprint(), ", ", entry.key()->algorithm(),
                        ", ", entry.key()->location(),
                        ") signs and verifies against its certificate in ",
                        FormatElapsed(elapsed)));
  return kExitOk;
}

absl::StatusOr<int> RunToken(CommandContext& context, const TokenFlags& flags) {
  Output& out = context.out();
  TokenClientOptions options;
  // One token and exit: a spare key would be made only to be thrown away.
  options.spare_keys = false;
  options.issuing_url = flags.issuing_url;
  if (options.issuing_url.empty()) {
    const char* env = std::getenv("CERTSTORE_ISSUING_URL");
    options.issuing_url = env == nullptr ? "" : env;
  }
  options.token_endpoint.url = flags.token_endpoint;
  options.token_endpoint.client_id = flags.client_id;
  options.token_endpoint.alias = flags.alias;
  for (const std::string& param : flags.params) {
    const size_t eq = param.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--param \"", PrintableText(param, false), "\" is not name=value"));
    }
    options.token_endpoint.extra_parameters.emplace_back(param.substr(0, eq),
                                                         param.substr(eq + 1));
  }
  if (flags.token_endpoint.empty() &&
      (!flags.client_id.empty() || !flags.alias.empty() ||
       !flags.params.empty())) {
    return absl::InvalidArgumentError(
        "--client-id, --alias and --param are for a generic token endpoint: "
        "give --token-endpoint URL too");
  }
  if (options.issuing_url.empty() && flags.token_endpoint.empty()) {
    return absl::InvalidArgumentError(
        "token needs the issuing endpoint (--issuing-url URL or "
        "$CERTSTORE_ISSUING_URL), or a generic token endpoint "
        "(--token-endpoint URL --client-id ID)");
  }
  CERTSTORE_ASSIGN_OR_RETURN(KeySpec spec, ParseKeyType(flags.key_type));
  options.key_spec = spec;
  options.attestation = flags.attestation;
  CERTSTORE_ASSIGN_OR_RETURN(absl::Duration total,
                             ParseDurationFlag(flags.timeout, "--timeout"));
  options.deadlines.total = total;
  options.deadlines.connect = std::min(options.deadlines.connect, total);
  options.deadlines.handshake = std::min(options.deadlines.handshake, total);
  if (!flags.server_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadInputFile(
        flags.server_ca_file, "server CA file", kMaxCredentialFileBytes);
    if (!ca.ok()) {
      return ca.status();
    }
    options.server_ca_pem = *std::move(ca);
  }
  Output* log_out = &out;
  options.log = [log_out](LogLevel level, absl::string_view component,
                          absl::string_view message) {
    log_out->Verbose(
        absl::StrCat(LogLevelName(level), " ", component, ": ", message));
  };
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<TokenClient> client,
                             TokenClient::Create(store, options));
  CERTSTORE_ASSIGN_OR_RETURN(AccessToken token, client->GetToken(flags.scope));
  json object = {{"alias", token.alias},
                 {"scope", token.scope},
                 {"thumbprint", token.thumbprint},
                 {"token_type", token.token_type},
                 {"expires_at", Rfc3339(token.expires_at)},
                 {"from_cache", token.from_cache},
                 {"healed", token.healed}};
  std::string text = absl::StrCat(
      "token for ", token.scope, ": ", token.token_type, ", expires ",
      Rfc3339(token.expires_at), "\n", "binding:  ", QuoteAlias(token.alias),
      " (", token.thumbprint, ")", token.healed ? ", healed (re-minted)" : "",
      "\n", "token:    ",
      flags.print_token ? token.access_token
                        : "(hidden; --print-token prints it)");
  if (flags.print_token) {
    object["access_token"] = token.access_token;
  }
  out.Emit("token", object, text);
  return kExitOk;
}

absl::StatusOr<int> RunNeedsRenewal(CommandContext& context,
                                    const NeedsRenewalFlags& flags) {
  Output& out = context.out();
  // Parse the threshold before touching the store: bad input is usage.
  bool percent = false;
  double fraction = 0;
  absl::Duration before_expiry;
  if (!flags.expires_in.empty()) {
    absl::string_view value = flags.expires_in;
    if (absl::ConsumeSuffix(&value, "%")) {
      percent =
          absl::SimpleAtod(value, &fraction) && fraction > 0 && fraction <= 100;
      if (!percent) {
        return absl::InvalidArgumentError(
            absl::StrCat("--expires-in \"", flags.expires_in,
                         "\": a percentage must be in (0, 100]"));
      }
      fraction /= 100;
    } else {
      absl::StatusOr<absl::Duration> d =
          ParseDurationFlag(flags.expires_in, "--expires-in");
      if (!d.ok()) {
        return d.status();
      }
      before_expiry = *d;
    }
  }
  CERTSTORE_ASSIGN_OR_RETURN(LayeredStore * store, context.Store());
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<EntryInfo> entries,
                             EntriesOf(*store, flags.alias));
  if (entries.empty()) {
    return NoEntry(*store, flags.alias);
  }
  const absl::Time now = Clock::System()->Now();
  // The entry the token client would use: newest not_after servable now.
  const EntryInfo* current = nullptr;
  for (const EntryInfo& info : entries) {
    if (IsServable(info.not_before, info.not_after, now, FindOptions{}) &&
        (current == nullptr || info.not_after > current->not_after)) {
      current = &info;
    }
  }
  bool needs = true;
  std::string why;
  absl::Time renew_at;
  if (current == nullptr) {
    why = "no entry has 24h of lifetime left";
  } else {
    const absl::Duration lifetime = current->not_after - current->not_before;
    if (percent) {
      renew_at = current->not_before + lifetime * fraction;
    } else if (!flags.expires_in.empty()) {
      renew_at = current->not_after - before_expiry;
    } else {
      renew_at = RenewalTime(current->not_before, current->not_after,
                             current->thumbprint);
    }
    needs = now >= renew_at;
    why = absl::StrCat(
        needs ? "passed its renewal point " : "fresh until ", Rfc3339(renew_at),
        flags.expires_in.empty()
            ? " (half its lifetime, +/- 10 %)"
            : absl::StrCat(" (--expires-in ", flags.expires_in, ")"));
  }
  json object = {{"alias", flags.alias}, {"needs_renewal", needs}};
  if (current != nullptr) {
    object["thumbprint"] = current->thumbprint;
    object["not_after"] = Rfc3339(current->not_after);
    object["renew_at"] = Rfc3339(renew_at);
  }
  out.Emit("renewal", object,
           absl::StrCat(QuoteAlias(flags.alias),
                        needs ? " needs renewal: " : " is fresh: ", why));
  const bool exit_zero = flags.invert ? !needs : needs;
  return exit_zero ? kExitOk : kExitFailure;
}

}  // namespace certstore::cli
