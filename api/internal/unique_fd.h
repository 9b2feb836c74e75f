// Owns a file descriptor; closes it when destroyed. Project-internal: the
// one owner type every component that holds descriptors uses.
#ifndef CERTSTORE_API_INTERNAL_UNIQUE_FD_H_
#define CERTSTORE_API_INTERNAL_UNIQUE_FD_H_

#include <unistd.h>

namespace certstore::internal {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  // Gives up ownership: the caller closes it.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the descriptor held (if any) and holds `fd`.
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_UNIQUE_FD_H_
