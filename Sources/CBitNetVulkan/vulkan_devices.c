// Device discovery through a loader opened at run time: no link-time dependency on libvulkan.
#define VK_NO_PROTOTYPES
#include "bitnet_vulkan.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <vulkan/vulkan.h>

#include "vulkan_queues.h"

static void set_error(char *error, int size, const char *message, const char *detail) {
    if (error && size > 0) snprintf(error, (size_t)size, "%s%s%s", message, detail ? ": " : "", detail ? detail : "");
}

static int has_extension(const VkExtensionProperties *extensions, uint32_t count, const char *name) {
    for (uint32_t i = 0; i < count; i++)
        if (strcmp(extensions[i].extensionName, name) == 0) return 1;
    return 0;
}

int bitnet_vulkan_list_devices(const char *library, bitnet_vulkan_device *devices, int capacity, char *error, int error_size) {
    void *handle = dlopen(library ? library : "libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        set_error(error, error_size, "the Vulkan loader could not be opened (install libvulkan1 and a driver)", dlerror());
        return -2;
    }
    PFN_vkGetInstanceProcAddr get = (PFN_vkGetInstanceProcAddr)dlsym(handle, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance create_instance = get ? (PFN_vkCreateInstance)get(NULL, "vkCreateInstance") : NULL;
    if (!create_instance) {
        set_error(error, error_size, "the Vulkan loader has no vkGetInstanceProcAddr/vkCreateInstance", NULL);
        return -1;
    }
    VkApplicationInfo application = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "swift-bitnet",
                                     .pEngineName = "swift-bitnet", .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &application};
    VkInstance instance;
    VkResult result = create_instance(&info, NULL, &instance);
    if (result != VK_SUCCESS) {
        char code[32];
        snprintf(code, sizeof code, "VkResult %d", (int)result);
        set_error(error, error_size, "no Vulkan instance could be created (is a driver installed?)", code);
        return -1;
    }
#define LOAD(name) PFN_##name name = (PFN_##name)get(instance, #name)
    LOAD(vkDestroyInstance);
    LOAD(vkEnumeratePhysicalDevices);
    LOAD(vkGetPhysicalDeviceProperties);
    LOAD(vkGetPhysicalDeviceProperties2);
    LOAD(vkGetPhysicalDeviceMemoryProperties);
    LOAD(vkGetPhysicalDeviceQueueFamilyProperties);
    LOAD(vkEnumerateDeviceExtensionProperties);
#undef LOAD
    if (!vkDestroyInstance || !vkEnumeratePhysicalDevices || !vkGetPhysicalDeviceProperties || !vkGetPhysicalDeviceProperties2 ||
        !vkGetPhysicalDeviceMemoryProperties || !vkGetPhysicalDeviceQueueFamilyProperties || !vkEnumerateDeviceExtensionProperties) {
        if (vkDestroyInstance) vkDestroyInstance(instance, NULL);
        set_error(error, error_size, "the Vulkan loader lacks Vulkan 1.1 entry points (vkGetPhysicalDeviceProperties2)", NULL);
        return -1;
    }
    uint32_t count = 0;
    vkEnumeratePhysicalDevices(instance, &count, NULL);
    VkPhysicalDevice physical[64];
    uint32_t listed = count < 64 ? count : 64;
    vkEnumeratePhysicalDevices(instance, &listed, physical);
    for (uint32_t d = 0; d < listed && (int)d < capacity; d++) {
        bitnet_vulkan_device *out = devices + d;
        memset(out, 0, sizeof *out);
        VkPhysicalDeviceProperties plain;
        vkGetPhysicalDeviceProperties(physical[d], &plain);

        VkExtensionProperties extensions[512];
        uint32_t extension_count = 512;
        if (vkEnumerateDeviceExtensionProperties(physical[d], NULL, &extension_count, extensions) < 0) extension_count = 0;
        int dot_extension = plain.apiVersion >= VK_API_VERSION_1_3 || has_extension(extensions, extension_count, "VK_KHR_shader_integer_dot_product");

        VkPhysicalDeviceShaderIntegerDotProductProperties dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
        VkPhysicalDeviceSubgroupProperties subgroup = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                                       .pNext = dot_extension ? &dot : NULL};
        VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &subgroup};
        VkPhysicalDeviceProperties2 properties = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver};
        vkGetPhysicalDeviceProperties2(physical[d], &properties);

        snprintf(out->name, sizeof out->name, "%s", plain.deviceName);
        snprintf(out->driver_name, sizeof out->driver_name, "%s", driver.driverName);
        snprintf(out->driver_info, sizeof out->driver_info, "%s", driver.driverInfo);
        out->type = (int32_t)plain.deviceType;
        out->vendor_id = plain.vendorID;
        out->device_id = plain.deviceID;
        out->api_version = plain.apiVersion;
        out->subgroup_size = subgroup.subgroupSize;
        out->subgroup_arithmetic = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                                   (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
        out->integer_dot_product = dot_extension;
        out->integer_dot_product_accelerated = dot_extension && dot.integerDotProduct4x8BitPackedSignedAccelerated;
        out->cooperative_matrix = has_extension(extensions, extension_count, "VK_KHR_cooperative_matrix");

        VkPhysicalDeviceMemoryProperties memory;
        vkGetPhysicalDeviceMemoryProperties(physical[d], &memory);
        for (uint32_t h = 0; h < memory.memoryHeapCount; h++) {
            if (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) out->device_local_bytes += memory.memoryHeaps[h].size;
            else out->other_bytes += memory.memoryHeaps[h].size;
        }

        VkQueueFamilyProperties families[32];
        uint32_t family_count = 32;
        vkGetPhysicalDeviceQueueFamilyProperties(physical[d], &family_count, families);
        int32_t compute;
        bitnet_vk_queue_families(families, family_count, &compute, &out->transfer_queue_family);
    }
    vkDestroyInstance(instance, NULL);
    return (int)count;
}
