// HugeAlloc: a std::allocator for the large arrays a packet path indexes at random (the flow
// table's records, index and values; the engine's TCP state slab). An allocation of at least
// kHugeMin bytes is mapped on its own, 2 MiB aligned, and the kernel is asked to back it with
// transparent huge pages (madvise(MADV_HUGEPAGE): the Debian default is THP "madvise", so
// without the request such an array gets 4 KiB pages and every random access to it is a likely
// TLB miss). Smaller ones come from operator new. Huge pages are a request, never a
// requirement: the array works the same on 4 KiB pages. Out of memory is std::bad_alloc, as
// with operator new.
//
//   std::vector<Record, HugeAlloc<Record>> recs(1 << 20);
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>

namespace l45 {

namespace detail {
inline constexpr size_t kHugePage = size_t{2} << 20;
inline constexpr size_t kHugeMin = size_t{1} << 20;

// `bytes` rounded up to whole huge pages, mapped 2 MiB aligned; nullptr when mmap fails.
inline void* map_huge(size_t bytes) {
  const size_t len = (bytes + kHugePage - 1) & ~(kHugePage - 1);
  // Map one huge page more and trim both ends to an aligned window.
  void* raw =
      ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  const uintptr_t end = start + len + kHugePage;
  if (end > aligned + len) ::munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  void* p = reinterpret_cast<void*>(aligned);
  (void)::madvise(p, len, MADV_HUGEPAGE);  // a request; refused (no THP) is fine
  return p;
}

inline void unmap_huge(void* p, size_t bytes) {
  ::munmap(p, (bytes + kHugePage - 1) & ~(kHugePage - 1));
}
}  // namespace detail

template <typename T>
struct HugeAlloc {
  using value_type = T;
  HugeAlloc() = default;
  template <typename U>
  HugeAlloc(const HugeAlloc<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    if (bytes < detail::kHugeMin) return static_cast<T*>(::operator new(bytes));
    void* p = detail::map_huge(bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes >= detail::kHugeMin) return detail::unmap_huge(p, bytes);
    ::operator delete(p);
  }
  friend bool operator==(const HugeAlloc&, const HugeAlloc&) { return true; }
};

}  // namespace l45
