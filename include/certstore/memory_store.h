/// \file
/// MemoryStore: an in-process store holding decoded entries.
#ifndef CERTSTORE_MEMORY_STORE_H_
#define CERTSTORE_MEMORY_STORE_H_

#include <memory>

#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/export.h"

namespace certstore {

struct MemoryStoreOptions {
  /// Time source for selection; null means Clock::System().
  const Clock* clock = nullptr;
};

/// Returns a new, empty memory store named "memory:". Lookups take no lock:
/// entries live in immutable shards that writers replace and reclaim once no
/// reader can see them, so concurrent Finds on different aliases do not
/// contend. Put/Delete copy one shard (1/256 of the aliases) and wait for
/// readers of the old one; writes are cheap but not free.
CERTSTORE_EXPORT std::unique_ptr<CertStore> NewMemoryStore(
    const MemoryStoreOptions& options = {});

}  // namespace certstore

#endif  // CERTSTORE_MEMORY_STORE_H_
