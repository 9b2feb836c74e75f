// A private temporary directory, removed with everything in it.
#ifndef CERTSTORE_TESTS_SUPPORT_TEMP_DIR_H_
#define CERTSTORE_TESTS_SUPPORT_TEMP_DIR_H_

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace certstore::testing {

class TempDir {
 public:
  TempDir() : TempDir("/tmp") {}
  // Under `parent` (an existing directory), e.g. /dev/shm.
  explicit TempDir(const std::string& parent) {
    std::string tmpl = parent + "/certstore-test-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_TEMP_DIR_H_
