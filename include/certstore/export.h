/// \file
/// CERTSTORE_EXPORT marks what the certstore libraries export: the public
/// API declared under include/certstore/. The libraries are built with hidden
/// visibility, so in a shared build (BUILD_SHARED_LIBS=ON) everything else
/// stays inside its library. In a static build the macro changes nothing a
/// linker sees.
#ifndef CERTSTORE_EXPORT_H_
#define CERTSTORE_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define CERTSTORE_EXPORT __attribute__((visibility("default")))
#else
#define CERTSTORE_EXPORT
#endif

#endif  // CERTSTORE_EXPORT_H_
