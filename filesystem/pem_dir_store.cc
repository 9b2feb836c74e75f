#include "certstore/pem_dir_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "api/internal/directories.h"
#include "api/internal/lock_file.h"
#include "api/internal/posix_status.h"
#include "certstore/backend_author.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "filesystem/alias_names.h"
#include "filesystem/entry_file.h"
#include "filesystem/entry_reader.h"
#include "filesystem/entry_writer.h"
#include "filesystem/file_system_ops.h"
#include "filesystem/posix_files.h"

namespace certstore {
namespace {

using filesystem_internal::AliasDirName;
using filesystem_internal::AliasOfDirName;
using filesystem_internal::Directory;
using filesystem_internal::InContext;
using filesystem_internal::IsAliasDirName;
using filesystem_internal::IsEntryFileName;
using filesystem_internal::UniqueFd;
using internal::ErrnoStatus;

absl::Status Miss(absl::string_view context) {
  return absl::NotFoundError(absl::StrCat(context, ": no servable entry"));
}

class PemDirStore final : public CertStore {
 public:
  PemDirStore(std::string path, UniqueFd dir_fd,
              const PemDirStoreOptions& options,
              const filesystem_internal::FileSystemOps& ops)
      : path_(std::move(path)),
        name_(absl::StrCat("file:", path_)),
        dir_fd_(std::move(dir_fd)),
        clock_(options.clock != nullptr ? options.clock : Clock::System()),
        writer_(dir_fd_.get(), path_, ops, options.write_lock_timeout),
        reader_(path_) {}

  std::string Name() const override { return name_; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "Find", ""));
    }
    const std::string context = OpContext(Name(), "Find", alias);
    const std::string dir_name = AliasDirName(alias);
    absl::StatusOr<Directory> dir =
        Directory::Open(dir_fd_.get(), dir_name, PathOf(dir_name));
    if (absl::IsNotFound(dir.status())) {
      return Miss(context);
    }
    CERTSTORE_RETURN_IF_ERROR(WithContext(dir.status(), context));
    CERTSTORE_ASSIGN_OR_RETURN(std::vector<Directory::Item> items,
                               InContext(dir->List(), context));
    Selection selection = Select(*dir, dir_name, alias, items, options);
    if (selection.best != nullptr) {
      return selection.best;
    }
    if (!selection.refused.ok()) {
      return WithContext(selection.refused, context);
    }
    return Miss(context);
  }

  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    CERTSTORE_RETURN_IF_ERROR(
        CheckEntryForPut(entry.get(), Name(), ChainCheck::kDecode));
    const std::string context = OpContext(Name(), "Put", entry->alias());
    absl::StatusOr<std::string> encoded =
        filesystem_internal::EncodeEntryFile(*entry);
    CERTSTORE_RETURN_IF_ERROR(WithContext(encoded.status(), context));
    absl::Cleanup wipe = [&encoded] {
      OPENSSL_cleanse(&(*encoded)[0], encoded->size());
    };
    const std::string dir_name = AliasDirName(entry->alias());
    const std::string file_name =
        filesystem_internal::EntryFileName(entry->thumbprint());
    CERTSTORE_ASSIGN_OR_RETURN(
        struct stat written,
        writer_.Write(dir_name, file_name, *encoded, context));
    // This store's Finds return the caller's entry while the file stays so.
    reader_.Remember(dir_name, file_name, *encoded, written, entry);
    // A fresh entry replaces what a read found refused (unreadable,
    // damaged): its files go now, not at the next eviction.
    if (TakeBrokenMark(dir_name)) {
      RemoveBrokenFiles(dir_name, context).IgnoreError();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> RemoveBroken(
      absl::string_view alias, const RemoveBrokenOptions& options) override {
    (void)options;  // every file in the store's directory is the store's
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "RemoveBroken", ""));
    }
    const std::string dir_name = AliasDirName(alias);
    TakeBrokenMark(dir_name);
    return RemoveBrokenFiles(dir_name,
                             OpContext(Name(), "RemoveBroken", alias));
  }

  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "DeleteAllForAlias", ""));
    }
    const std::string context = OpContext(Name(), "DeleteAllForAlias", alias);
    const std::string dir_name = AliasDirName(alias);
    absl::StatusOr<int> removed = writer_.RemoveAll(dir_name, context);
    reader_.Forget(dir_name);
    return removed;
  }

  absl::Status ProbeKey(const Entry& entry) override {
    return WithContext(ProbeEntryKey(entry),
                       OpContext(Name(), "ProbeKey", entry.alias()));
  }

  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    return CreateSoftwareKeyFor(Name(), alias, spec);
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override {
    const std::string context = OpContext(Name(), "List", "");
    CERTSTORE_ASSIGN_OR_RETURN(
        Directory top,
        InContext(Directory::Open(dir_fd_.get(), ".", path_), context));
    CERTSTORE_ASSIGN_OR_RETURN(std::vector<Directory::Item> dirs,
                               InContext(top.List(), context));
    std::vector<EntryInfo> infos;
    for (const Directory::Item& item : dirs) {
      if (IsAliasDirName(item.name)) {
        ListAliasDir(item.name, options, &infos);
      }
    }
    SortListing(infos);
    return infos;
  }

  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "LockAlias", ""));
    }
    return internal::LockAliasAcrossProcesses(
        alias_locks_, alias, dir_fd_.get(),
        filesystem_internal::MintLockFileName(alias), timeout,
        OpContext(Name(), "LockAlias", alias));
  }

 private:
  // What Find made of an alias directory.
  struct Selection {
    std::shared_ptr<const Entry> best;  // newest servable not_after
    absl::Status refused;               // the first file refused
  };

  std::string PathOf(absl::string_view dir_name) const {
    return absl::StrCat(path_, "/", dir_name);
  }

  Selection Select(const Directory& dir, const std::string& dir_name,
                   absl::string_view alias,
                   const std::vector<Directory::Item>& items,
                   const FindOptions& options) {
    const absl::Time now = clock_->Now();
    Selection selection;
    std::vector<std::string> present;
    for (const Directory::Item& item : items) {
      if (!IsEntryFileName(item.name)) {
        continue;
      }
      present.push_back(item.name);
      absl::StatusOr<std::shared_ptr<const Entry>> entry =
          reader_.Load(dir, dir_name, item, alias);
      if (!entry.ok()) {
        // NotFound: deleted since the listing; not a fault.
        if (!absl::IsNotFound(entry.status()) && selection.refused.ok()) {
          selection.refused = entry.status();
          MarkBroken(dir_name);
        }
      } else if (IsServable((*entry)->not_before(), (*entry)->not_after(), now,
                            options) &&
                 (selection.best == nullptr ||
                  (*entry)->not_after() > selection.best->not_after())) {
        selection.best = *std::move(entry);
      }
    }
    reader_.Retain(dir_name, present);
    return selection;
  }

  // Adds the listing of every good file of `dir_name` whose alias starts
  // with the prefix, and with include_broken every file it cannot read or
  // decode, with the reason.
  void ListAliasDir(const std::string& dir_name, const ListOptions& options,
                    std::vector<EntryInfo>* infos) const {
    std::optional<std::string> alias = AliasOfDirName(dir_name);
    if (alias.has_value() && !absl::StartsWith(*alias, options.alias_prefix)) {
      return;
    }
    absl::StatusOr<Directory> dir =
        Directory::Open(dir_fd_.get(), dir_name, PathOf(dir_name));
    absl::StatusOr<std::vector<Directory::Item>> items =
        dir.ok() ? dir->List() : dir.status();
    if (!items.ok()) {
      if (options.include_broken && alias.has_value()) {
        infos->push_back(BrokenInfo(*alias, "", items.status()));
      }
      return;
    }
    for (const Directory::Item& item : *items) {
      if (!IsEntryFileName(item.name)) {
        continue;
      }
      absl::StatusOr<EntryInfo> info =
          reader_.Summarize(*dir, dir_name, item, Name());
      if (info.ok() && absl::StartsWith(info->alias, options.alias_prefix)) {
        infos->push_back(*std::move(info));
      } else if (!info.ok() && !absl::IsNotFound(info.status()) &&
                 options.include_broken) {
        infos->push_back(
            BrokenInfo(alias.value_or(""), item.name, info.status()));
      }
    }
  }

  // A file (or, with no `file_name`, a directory) the store cannot serve.
  EntryInfo BrokenInfo(const std::string& alias, absl::string_view file_name,
                       const absl::Status& why) const {
    EntryInfo info;
    info.alias = alias;
    info.store = Name();
    if (absl::ConsumePrefix(&file_name, "x5t-") &&
        absl::ConsumeSuffix(&file_name, ".pem")) {
      info.thumbprint = std::string(file_name);  // as named, not as read
    }
    const bool unreadable = absl::IsPermissionDenied(why) ||
                            absl::IsUnavailable(why) ||
                            absl::IsResourceExhausted(why);
    info.problem =
        absl::StrCat(unreadable ? "unreadable: " : "damaged: ", why.message());
    return info;
  }

  // Removes the entry files of `dir_name` that cannot be served: refused
  // (mode, owner, links) or undecodable; never one that reads well.
  absl::StatusOr<int> RemoveBrokenFiles(const std::string& dir_name,
                                        absl::string_view context) {
    return writer_.RemoveIf(
        dir_name,
        [&](const Directory& dir, const Directory::Item& item) {
          absl::StatusOr<EntryInfo> info =
              reader_.Summarize(dir, dir_name, item, Name());
          return !info.ok() && !absl::IsNotFound(info.status());
        },
        context);
  }

  void MarkBroken(const std::string& dir_name) {
    absl::MutexLock lock(&broken_mu_);
    dirs_with_broken_.insert(dir_name);
  }

  bool TakeBrokenMark(const std::string& dir_name) {
    absl::MutexLock lock(&broken_mu_);
    return dirs_with_broken_.erase(dir_name) > 0;
  }

  const std::string path_;
  const std::string name_;
  const UniqueFd dir_fd_;
  const Clock* const clock_;
  filesystem_internal::EntryWriter writer_;
  filesystem_internal::EntryReader reader_;
  InProcessAliasLocks alias_locks_;
  // Alias directories where a Find met a file it refused: the next Put
  // there removes such files.
  absl::Mutex broken_mu_;
  absl::flat_hash_set<std::string> dirs_with_broken_
      ABSL_GUARDED_BY(broken_mu_);
};

// `directory` made absolute, without trailing slashes (a trailing slash
// would make the kernel follow a symlink in the last component).
absl::StatusOr<std::string> AbsoluteDirectory(const std::string& directory) {
  if (directory.empty() || directory.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("file:", QuoteAlias(directory),
                     ": Open: PemDirStoreOptions.directory is empty or "
                     "holds a NUL byte"));
  }
  std::string path = directory;
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
      return ErrnoStatus(errno,
                         absl::StrCat("file:", directory, ": Open: getcwd"));
    }
    path = absl::StrCat(cwd, "/", path);
  }
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

absl::StatusOr<UniqueFd> OpenStoreDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat(path, ": mkdir"));
  }
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd fd,
                             internal::OpenPrivateDir(AT_FDCWD, path, path));
  // A writers' lock file someone else controls would surface at the first
  // write; refuse the directory now instead.
  CERTSTORE_RETURN_IF_ERROR(
      internal::OpenLockFile(fd.get(), filesystem_internal::kWritersLockName,
                             path)
          .status());
  return fd;
}

}  // namespace

namespace filesystem_internal {

absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStoreWithOps(
    const PemDirStoreOptions& options, const FileSystemOps& ops) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string path,
                             AbsoluteDirectory(options.directory));
  CERTSTORE_ASSIGN_OR_RETURN(
      UniqueFd fd,
      InContext(OpenStoreDirectory(path),
                OpContext(absl::StrCat("file:", path), "Open", "")));
  return std::unique_ptr<CertStore>(
      new PemDirStore(std::move(path), std::move(fd), options, ops));
}

}  // namespace filesystem_internal

absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStore(
    const PemDirStoreOptions& options) {
  return filesystem_internal::OpenPemDirStoreWithOps(
      options, filesystem_internal::RealFileSystemOps());
}

absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStore(
    absl::string_view directory) {
  PemDirStoreOptions options;
  options.directory = std::string(directory);
  return OpenPemDirStore(options);
}

}  // namespace certstore
