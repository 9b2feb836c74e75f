// CERTSTORE_INTERNAL_EXPORT marks what one certstore library calls in
// another although it is not public API: the helpers of api/internal/,
// declared in headers that are not installed. A shared build must export
// them (every library is built with hidden visibility); nothing outside
// certstore may rely on them.
#ifndef CERTSTORE_API_INTERNAL_INTERNAL_EXPORT_H_
#define CERTSTORE_API_INTERNAL_INTERNAL_EXPORT_H_

#define CERTSTORE_INTERNAL_EXPORT __attribute__((visibility("default")))

#endif  // CERTSTORE_API_INTERNAL_INTERNAL_EXPORT_H_
