// The Vulkan loader, opened at run time (dlopen "libvulkan.so.1"), so that the library and the CLI run where
// Vulkan is missing; and what the devices it finds can do. The Swift module BitNetVulkan wraps this.
#ifndef BITNET_VULKAN_H
#define BITNET_VULKAN_H

#include <stdint.h>

/// What one physical device reports.
typedef struct {
    char name[256];
    /// VkPhysicalDeviceType: 0 other, 1 integrated GPU, 2 discrete GPU, 3 virtual GPU, 4 CPU.
    int32_t type;
    uint32_t vendor_id, device_id;
    /// VkPhysicalDeviceDriverProperties: the driver's name and version text ("llvmpipe", "NVIDIA", …).
    char driver_name[256];
    char driver_info[256];
    uint32_t api_version;
    /// Sums over the memory heaps: device-local, and the rest.
    uint64_t device_local_bytes, other_bytes;
    /// The subgroup size and whether compute shaders may use subgroup arithmetic.
    uint32_t subgroup_size;
    int32_t subgroup_arithmetic;
    /// VK_KHR_shader_integer_dot_product (or Vulkan 1.3) supported, and whether its signed 4×8-bit packed
    /// dot product is accelerated (not emulated).
    int32_t integer_dot_product;
    int32_t integer_dot_product_accelerated;
    /// VK_KHR_cooperative_matrix is offered.
    int32_t cooperative_matrix;
    /// A queue family with transfer but neither graphics nor compute (-1: none).
    int32_t transfer_queue_family;
} bitnet_vulkan_device;

/// Opens the loader (`library`, or "libvulkan.so.1" when NULL) once per process and lists the physical
/// devices of a Vulkan 1.2 instance into `devices` (at most `capacity`). Returns the number found (which may
/// exceed `capacity`), or, with a message in `error` (`error_size` bytes), -2 when there is no loader and -1 when no
/// instance can be created (no driver).
int bitnet_vulkan_list_devices(const char *library, bitnet_vulkan_device *devices, int capacity, char *error, int error_size);

#endif
