// The runtime behind bitnet_vulkan_runtime.h. Function pointers are loaded from the loader opened at run time;
// nothing here links libvulkan.
#define VK_NO_PROTOTYPES
#include "bitnet_vulkan_runtime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#include "vulkan_queues.h"

#define STAGING_BUFFERS 2
#define STAGING_BYTES (16u << 20)
#define BLOCK_BYTES (64ull << 20)
#define MAX_BLOCKS 4096

#define DEVICE_FUNCTIONS(X)                                                                                                       \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements)                 \
    X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) X(vkCreateShaderModule)             \
    X(vkDestroyShaderModule) X(vkCreateComputePipelines) X(vkDestroyPipeline) X(vkCreatePipelineLayout)                           \
    X(vkDestroyPipelineLayout) X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreateDescriptorPool)           \
    X(vkDestroyDescriptorPool) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) X(vkCreateCommandPool)                       \
    X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkResetCommandBuffer)     \
    X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier)                \
    X(vkCmdCopyBuffer) X(vkCreateFence) X(vkDestroyFence) X(vkWaitForFences) X(vkResetFences) X(vkQueueSubmit)                    \
    X(vkDeviceWaitIdle) X(vkCreateQueryPool) X(vkDestroyQueryPool) X(vkCmdResetQueryPool) X(vkCmdWriteTimestamp)                  \
    X(vkGetQueryPoolResults)

typedef struct {
    VkDeviceMemory memory;
    uint32_t type;
    VkDeviceSize size, used;
    int64_t live;
    void *mapped;
} memory_block;

struct bitnet_vk_buffer {
    VkBuffer buffer;
    int block;
    VkDeviceSize offset, size;
    void *mapped;
};

struct bitnet_vk_pipeline {
    VkPipeline pipeline;
};

struct bitnet_vk_stream {
    VkCommandPool pool;
    VkCommandBuffer commands;
    VkFence fence;
    VkDescriptorPool descriptors;
    VkQueryPool timestamps;  // VK_NULL_HANDLE until bitnet_vk_stream_enable_timestamps
    uint32_t timestamp_capacity, timestamp_count;
};

struct bitnet_vk_context {
    void *library;
    PFN_vkGetInstanceProcAddr get_instance;
    PFN_vkDestroyInstance destroy_instance;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkInstance instance;
    uint32_t api_version;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkPhysicalDeviceMemoryProperties memory_properties;
    VkDeviceSize storage_alignment;
    float timestamp_period;           // nanoseconds a timestamp tick
    uint32_t timestamp_bits;          // valid bits of the compute queue's timestamps; 0: none
    VkDevice device;
#define DECLARE(name) PFN_##name name;
    DEVICE_FUNCTIONS(DECLARE)
#undef DECLARE
    uint32_t compute_family, transfer_family;
    VkQueue compute_queue, transfer_queue;
    pthread_mutex_t lock;  // queues, blocks and validation counters
    memory_block blocks[MAX_BLOCKS];
    int block_count;
    VkDeviceSize in_use;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipeline_layout;
    bitnet_vk_buffer *placeholder;
    // The staging ring.
    VkCommandPool transfer_pool;
    bitnet_vk_buffer *staging[STAGING_BUFFERS];
    VkCommandBuffer staging_commands[STAGING_BUFFERS];
    VkFence staging_fences[STAGING_BUFFERS];
    int staging_pending[STAGING_BUFFERS];
    int staging_next;
    int64_t validation_count;
    char validation_message[1024];
};

static bitnet_vk_status fail(char *error, int size, bitnet_vk_status status, const char *what, VkResult result) {
    if (error && size > 0) {
        if (result != VK_SUCCESS) snprintf(error, (size_t)size, "%s (VkResult %d)", what, (int)result);
        else snprintf(error, (size_t)size, "%s", what);
    }
    return status;
}

static bitnet_vk_status status_of(VkResult result) {
    switch (result) {
    case VK_SUCCESS: return BITNET_VK_OK;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return BITNET_VK_OUT_OF_MEMORY;
    case VK_ERROR_DEVICE_LOST: return BITNET_VK_DEVICE_LOST;
    default: return BITNET_VK_FAILED;
    }
}

#define CHECK(call, what)                                                                                                         \
    do {                                                                                                                          \
        VkResult result_ = (call);                                                                                                \
        if (result_ != VK_SUCCESS) return fail(error, error_size, status_of(result_), what, result_);                            \
    } while (0)

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)types;
    bitnet_vk_context *context = user;
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        pthread_mutex_lock(&context->lock);
        context->validation_count++;
        snprintf(context->validation_message, sizeof context->validation_message, "%s", data && data->pMessage ? data->pMessage : "?");
        pthread_mutex_unlock(&context->lock);
    }
    return VK_FALSE;
}

static int has_layer(PFN_vkEnumerateInstanceLayerProperties enumerate, const char *name) {
    uint32_t count = 0;
    if (!enumerate || enumerate(&count, NULL) != VK_SUCCESS || count == 0) return 0;
    VkLayerProperties *layers = calloc(count, sizeof *layers);
    int found = 0;
    if (layers && enumerate(&count, layers) == VK_SUCCESS)
        for (uint32_t i = 0; i < count; i++) found |= strcmp(layers[i].layerName, name) == 0;
    free(layers);
    return found;
}

static bitnet_vk_status create_device(bitnet_vk_context *c, const bitnet_vk_options *options, char *error, int error_size) {
    PFN_vkEnumeratePhysicalDevices enumerate = (PFN_vkEnumeratePhysicalDevices)c->get_instance(c->instance, "vkEnumeratePhysicalDevices");
    PFN_vkGetPhysicalDeviceProperties properties = (PFN_vkGetPhysicalDeviceProperties)c->get_instance(c->instance, "vkGetPhysicalDeviceProperties");
    PFN_vkGetPhysicalDeviceMemoryProperties memory = (PFN_vkGetPhysicalDeviceMemoryProperties)c->get_instance(c->instance, "vkGetPhysicalDeviceMemoryProperties");
    PFN_vkGetPhysicalDeviceQueueFamilyProperties families =
        (PFN_vkGetPhysicalDeviceQueueFamilyProperties)c->get_instance(c->instance, "vkGetPhysicalDeviceQueueFamilyProperties");
    PFN_vkCreateDevice create = (PFN_vkCreateDevice)c->get_instance(c->instance, "vkCreateDevice");
    PFN_vkGetDeviceProcAddr get_device = (PFN_vkGetDeviceProcAddr)c->get_instance(c->instance, "vkGetDeviceProcAddr");
    if (!enumerate || !properties || !memory || !families || !create || !get_device)
        return fail(error, error_size, BITNET_VK_UNAVAILABLE, "the Vulkan loader lacks instance entry points", VK_SUCCESS);
    VkPhysicalDevice devices[64];
    uint32_t count = 64;
    CHECK(enumerate(c->instance, &count, devices) < 0 ? VK_ERROR_INITIALIZATION_FAILED : VK_SUCCESS, "vkEnumeratePhysicalDevices failed");
    if (options->device_index < 0 || (uint32_t)options->device_index >= count) {
        char message[128];
        snprintf(message, sizeof message, "there is no Vulkan device %d (this machine has %u)", options->device_index, count);
        return fail(error, error_size, BITNET_VK_UNAVAILABLE, message, VK_SUCCESS);
    }
    c->physical = devices[options->device_index];
    VkPhysicalDeviceProperties device_properties;
    properties(c->physical, &device_properties);
    c->storage_alignment = device_properties.limits.minStorageBufferOffsetAlignment;
    const VkPhysicalDeviceLimits *limits = &device_properties.limits;
    uint32_t bindable = limits->maxPerStageDescriptorStorageBuffers;
    if (limits->maxDescriptorSetStorageBuffers < bindable) bindable = limits->maxDescriptorSetStorageBuffers;
    if (limits->maxPerStageResources < bindable) bindable = limits->maxPerStageResources;
    if (bindable < BITNET_VK_BINDINGS) {  // one descriptor layout for every pipeline (a chained shader binds all ten)
        char message[160];
        snprintf(message, sizeof message, "the device binds at most %u storage buffers a shader; the backend's shaders need %d",
                 bindable, BITNET_VK_BINDINGS);
        return fail(error, error_size, BITNET_VK_UNAVAILABLE, message, VK_SUCCESS);
    }
    memory(c->physical, &c->memory_properties);

    VkQueueFamilyProperties family[32];
    uint32_t family_count = 32;
    families(c->physical, &family_count, family);
    int32_t compute, transfer;
    bitnet_vk_queue_families(family, family_count, &compute, &transfer);
    if (compute < 0) return fail(error, error_size, BITNET_VK_UNAVAILABLE, "the device has no compute queue", VK_SUCCESS);
    c->compute_family = (uint32_t)compute;
    c->transfer_family = transfer < 0 ? c->compute_family : (uint32_t)transfer;
    c->timestamp_period = device_properties.limits.timestampPeriod;
    c->timestamp_bits = family[compute].timestampValidBits;

    float priority = 1;
    VkDeviceQueueCreateInfo queues[2] = {
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->compute_family, .queueCount = 1, .pQueuePriorities = &priority},
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->transfer_family, .queueCount = 1, .pQueuePriorities = &priority},
    };
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
                                                          .shaderIntegerDotProduct = VK_TRUE};
    const char *extensions[1];
    uint32_t extension_count = 0;
    uint32_t version = device_properties.apiVersion < c->api_version ? device_properties.apiVersion : c->api_version;
    if (options->integer_dot_product && version < VK_API_VERSION_1_3) extensions[extension_count++] = "VK_KHR_shader_integer_dot_product";
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                               .pNext = options->integer_dot_product ? &dot : NULL,
                               .queueCreateInfoCount = c->transfer_family == c->compute_family ? 1 : 2,
                               .pQueueCreateInfos = queues,
                               .enabledExtensionCount = extension_count,
                               .ppEnabledExtensionNames = extensions};
    CHECK(create(c->physical, &info, NULL, &c->device), "vkCreateDevice failed");
#define LOAD(name)                                                                                                                \
    c->name = (PFN_##name)get_device(c->device, #name);                                                                          \
    if (!c->name) return fail(error, error_size, BITNET_VK_UNAVAILABLE, "the driver lacks " #name, VK_SUCCESS);
    DEVICE_FUNCTIONS(LOAD)
#undef LOAD
    c->vkGetDeviceQueue(c->device, c->compute_family, 0, &c->compute_queue);
    c->vkGetDeviceQueue(c->device, c->transfer_family, 0, &c->transfer_queue);
    return BITNET_VK_OK;
}

static bitnet_vk_status create_layouts(bitnet_vk_context *c, char *error, int error_size) {
    VkDescriptorSetLayoutBinding bindings[BITNET_VK_BINDINGS];
    for (uint32_t i = 0; i < BITNET_VK_BINDINGS; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 1,
                                                      .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo set = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = BITNET_VK_BINDINGS,
                                           .pBindings = bindings};
    CHECK(c->vkCreateDescriptorSetLayout(c->device, &set, NULL, &c->set_layout), "vkCreateDescriptorSetLayout failed");
    VkPushConstantRange push = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = BITNET_VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1, .pSetLayouts = &c->set_layout,
                                         .pushConstantRangeCount = 1, .pPushConstantRanges = &push};
    CHECK(c->vkCreatePipelineLayout(c->device, &layout, NULL, &c->pipeline_layout), "vkCreatePipelineLayout failed");
    return BITNET_VK_OK;
}

static bitnet_vk_status create_staging(bitnet_vk_context *c, char *error, int error_size) {
    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = c->transfer_family};
    CHECK(c->vkCreateCommandPool(c->device, &pool, NULL, &c->transfer_pool), "vkCreateCommandPool failed");
    VkCommandBufferAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = c->transfer_pool,
                                            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = STAGING_BUFFERS};
    CHECK(c->vkAllocateCommandBuffers(c->device, &allocate, c->staging_commands), "vkAllocateCommandBuffers failed");
    for (int i = 0; i < STAGING_BUFFERS; i++) {
        VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        CHECK(c->vkCreateFence(c->device, &fence, NULL, &c->staging_fences[i]), "vkCreateFence failed");
    }
    return BITNET_VK_OK;
}

bitnet_vk_status bitnet_vk_context_create(const bitnet_vk_options *options, bitnet_vk_context **out, char *error, int error_size) {
    *out = NULL;
    bitnet_vk_context *c = calloc(1, sizeof *c);
    if (!c) return fail(error, error_size, BITNET_VK_OUT_OF_MEMORY, "out of host memory", VK_SUCCESS);
    pthread_mutex_init(&c->lock, NULL);
    bitnet_vk_status status = BITNET_VK_OK;
    c->library = dlopen(options->library ? options->library : "libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!c->library) {
        status = fail(error, error_size, BITNET_VK_UNAVAILABLE, "the Vulkan loader could not be opened (install libvulkan1 and a driver)", VK_SUCCESS);
        goto failed;
    }
    c->get_instance = (PFN_vkGetInstanceProcAddr)dlsym(c->library, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance create_instance = c->get_instance ? (PFN_vkCreateInstance)c->get_instance(NULL, "vkCreateInstance") : NULL;
    if (!create_instance) {
        status = fail(error, error_size, BITNET_VK_UNAVAILABLE, "the Vulkan loader has no vkCreateInstance", VK_SUCCESS);
        goto failed;
    }
    int validation = 0;
    if (options->validation) {
        if (!has_layer((PFN_vkEnumerateInstanceLayerProperties)c->get_instance(NULL, "vkEnumerateInstanceLayerProperties"), "VK_LAYER_KHRONOS_validation")) {
            status = fail(error, error_size, BITNET_VK_UNAVAILABLE, "validation was asked for, but VK_LAYER_KHRONOS_validation is not installed (vulkan-validationlayers)", VK_SUCCESS);
            goto failed;
        }
        validation = 1;
    }
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *extensions[] = {"VK_EXT_debug_utils"};
    VkDebugUtilsMessengerCreateInfoEXT messenger = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = c};
    // Vulkan 1.3 where the loader has it, so that 1.3 devices offer their core integer dot product.
    PFN_vkEnumerateInstanceVersion instance_version = (PFN_vkEnumerateInstanceVersion)c->get_instance(NULL, "vkEnumerateInstanceVersion");
    uint32_t loader_version = VK_API_VERSION_1_0;
    if (!instance_version || instance_version(&loader_version) != VK_SUCCESS) loader_version = VK_API_VERSION_1_0;
    c->api_version = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
    VkApplicationInfo application = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "swift-bitnet",
                                     .pEngineName = "swift-bitnet", .apiVersion = c->api_version};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pNext = validation ? &messenger : NULL,
                                 .pApplicationInfo = &application, .enabledLayerCount = validation ? 1 : 0, .ppEnabledLayerNames = layers,
                                 .enabledExtensionCount = validation ? 1 : 0, .ppEnabledExtensionNames = extensions};
    VkResult result = create_instance(&info, NULL, &c->instance);
    if (result != VK_SUCCESS) {
        status = fail(error, error_size, BITNET_VK_UNAVAILABLE, "no Vulkan instance could be created (is a driver installed?)", result);
        goto failed;
    }
    c->destroy_instance = (PFN_vkDestroyInstance)c->get_instance(c->instance, "vkDestroyInstance");
    if (validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create_messenger =
            (PFN_vkCreateDebugUtilsMessengerEXT)c->get_instance(c->instance, "vkCreateDebugUtilsMessengerEXT");
        c->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)c->get_instance(c->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (create_messenger) create_messenger(c->instance, &messenger, NULL, &c->messenger);
    }
    if ((status = create_device(c, options, error, error_size)) != BITNET_VK_OK) goto failed;
    if ((status = create_layouts(c, error, error_size)) != BITNET_VK_OK) goto failed;
    if ((status = create_staging(c, error, error_size)) != BITNET_VK_OK) goto failed;
    if ((status = bitnet_vk_buffer_create(c, 256, BITNET_VK_MEMORY_DEVICE, &c->placeholder, error, error_size)) != BITNET_VK_OK) goto failed;
    *out = c;
    return BITNET_VK_OK;
failed:
    bitnet_vk_context_destroy(c);
    return status;
}

void bitnet_vk_context_destroy(bitnet_vk_context *c) {
    if (!c) return;
    if (c->device) {
        c->vkDeviceWaitIdle(c->device);
        for (int i = 0; i < STAGING_BUFFERS; i++) {
            if (c->staging[i]) bitnet_vk_buffer_destroy(c, c->staging[i]);
            if (c->staging_fences[i]) c->vkDestroyFence(c->device, c->staging_fences[i], NULL);
        }
        if (c->transfer_pool) c->vkDestroyCommandPool(c->device, c->transfer_pool, NULL);
        if (c->placeholder) bitnet_vk_buffer_destroy(c, c->placeholder);
        for (int b = 0; b < c->block_count; b++)
            if (c->blocks[b].memory) c->vkFreeMemory(c->device, c->blocks[b].memory, NULL);
        if (c->pipeline_layout) c->vkDestroyPipelineLayout(c->device, c->pipeline_layout, NULL);
        if (c->set_layout) c->vkDestroyDescriptorSetLayout(c->device, c->set_layout, NULL);
        c->vkDestroyDevice(c->device, NULL);
    }
    if (c->messenger && c->destroy_messenger) c->destroy_messenger(c->instance, c->messenger, NULL);
    if (c->instance && c->destroy_instance) c->destroy_instance(c->instance, NULL);
    // The loader stays open: drivers may keep threads and atexit handlers in it.
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int64_t bitnet_vk_validation_messages(bitnet_vk_context *c, char *message, int message_size) {
    pthread_mutex_lock(&c->lock);
    int64_t count = c->validation_count;
    if (message && message_size > 0) snprintf(message, (size_t)message_size, "%s", c->validation_message);
    pthread_mutex_unlock(&c->lock);
    return count;
}

uint64_t bitnet_vk_memory_in_use(bitnet_vk_context *c) {
    pthread_mutex_lock(&c->lock);
    uint64_t bytes = c->in_use;
    pthread_mutex_unlock(&c->lock);
    return bytes;
}

int32_t bitnet_vk_has_transfer_queue(bitnet_vk_context *c) { return c->transfer_family != c->compute_family; }

// MARK: - Memory

/// Memory types for `memory`, best first, among those `allowed` by the buffer.
static int preferred_types(bitnet_vk_context *c, bitnet_vk_memory memory, uint32_t allowed, uint32_t *types) {
    static const VkMemoryPropertyFlags device[][2] = {
        {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT},
        {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0},
        {VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0},
    };
    static const VkMemoryPropertyFlags host[][2] = {
        {VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0},
        {VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0},
    };
    const VkMemoryPropertyFlags(*list)[2] = memory == BITNET_VK_MEMORY_DEVICE ? device : host;
    int rules = memory == BITNET_VK_MEMORY_DEVICE ? 3 : 2, count = 0;
    for (int r = 0; r < rules; r++)
        for (uint32_t t = 0; t < c->memory_properties.memoryTypeCount; t++) {
            VkMemoryPropertyFlags flags = c->memory_properties.memoryTypes[t].propertyFlags;
            if (!(allowed & (1u << t)) || (flags & list[r][0]) != list[r][0] || (flags & list[r][1])) continue;
            int seen = 0;
            for (int i = 0; i < count; i++) seen |= types[i] == t;
            if (!seen) types[count++] = t;
        }
    return count;
}

/// A block of memory type `type` with `size` free bytes at `alignment`; appends one when none has room.
static int find_block(bitnet_vk_context *c, uint32_t type, VkDeviceSize size, VkDeviceSize alignment, VkDeviceSize *offset, VkResult *result) {
    int dedicated = size > BLOCK_BYTES / 2;
    if (!dedicated)
        for (int b = 0; b < c->block_count; b++) {
            memory_block *block = c->blocks + b;
            if (!block->memory || block->type != type || block->size != BLOCK_BYTES) continue;
            VkDeviceSize start = (block->used + alignment - 1) / alignment * alignment;
            if (start + size <= block->size) {
                *offset = start;
                return b;
            }
        }
    int slot = -1;
    for (int b = 0; b < c->block_count; b++)
        if (!c->blocks[b].memory) slot = b;
    if (slot < 0) {
        if (c->block_count == MAX_BLOCKS) {
            *result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
            return -1;
        }
        slot = c->block_count++;
    }
    memory_block *block = c->blocks + slot;
    VkMemoryAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = dedicated ? size : BLOCK_BYTES,
                                     .memoryTypeIndex = type};
    *result = c->vkAllocateMemory(c->device, &allocate, NULL, &block->memory);
    if (*result != VK_SUCCESS) {
        block->memory = VK_NULL_HANDLE;
        return -1;
    }
    block->type = type;
    block->size = allocate.allocationSize;
    block->used = 0;
    block->live = 0;
    block->mapped = NULL;
    if (c->memory_properties.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        if (c->vkMapMemory(c->device, block->memory, 0, VK_WHOLE_SIZE, 0, &block->mapped) != VK_SUCCESS) block->mapped = NULL;
    }
    *offset = 0;
    return slot;
}

bitnet_vk_status bitnet_vk_buffer_create(bitnet_vk_context *c, uint64_t size, bitnet_vk_memory memory, bitnet_vk_buffer **out, char *error,
                                         int error_size) {
    *out = NULL;
    bitnet_vk_buffer *buffer = calloc(1, sizeof *buffer);
    if (!buffer) return fail(error, error_size, BITNET_VK_OUT_OF_MEMORY, "out of host memory", VK_SUCCESS);
    uint32_t families[2] = {c->compute_family, c->transfer_family};
    int shared = c->compute_family != c->transfer_family;
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size ? size : 4,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               .sharingMode = shared ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE,
                               .queueFamilyIndexCount = shared ? 2 : 0, .pQueueFamilyIndices = families};
    VkResult result = c->vkCreateBuffer(c->device, &info, NULL, &buffer->buffer);
    if (result != VK_SUCCESS) {
        free(buffer);
        return fail(error, error_size, status_of(result), "vkCreateBuffer failed", result);
    }
    VkMemoryRequirements requirements;
    c->vkGetBufferMemoryRequirements(c->device, buffer->buffer, &requirements);
    VkDeviceSize alignment = requirements.alignment > c->storage_alignment ? requirements.alignment : c->storage_alignment;
    uint32_t types[VK_MAX_MEMORY_TYPES];
    int count = preferred_types(c, memory, requirements.memoryTypeBits, types);
    pthread_mutex_lock(&c->lock);
    int block = -1;
    VkDeviceSize offset = 0;
    result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    for (int i = 0; i < count && block < 0; i++) block = find_block(c, types[i], requirements.size, alignment, &offset, &result);
    if (block >= 0) {
        c->blocks[block].used = offset + requirements.size;
        c->blocks[block].live++;
        c->in_use += requirements.size;
    }
    pthread_mutex_unlock(&c->lock);
    if (block < 0) {
        c->vkDestroyBuffer(c->device, buffer->buffer, NULL);
        free(buffer);
        char message[160];
        snprintf(message, sizeof message, "no memory for a buffer of %llu bytes%s", (unsigned long long)size, count ? "" : " (no suitable memory type)");
        return fail(error, error_size, BITNET_VK_OUT_OF_MEMORY, message, result);
    }
    result = c->vkBindBufferMemory(c->device, buffer->buffer, c->blocks[block].memory, offset);
    buffer->block = block;
    buffer->offset = offset;
    buffer->size = requirements.size;
    buffer->mapped = c->blocks[block].mapped ? (char *)c->blocks[block].mapped + offset : NULL;
    *out = buffer;
    if (result != VK_SUCCESS) {
        bitnet_vk_buffer_destroy(c, buffer);
        *out = NULL;
        return fail(error, error_size, status_of(result), "vkBindBufferMemory failed", result);
    }
    return BITNET_VK_OK;
}

void bitnet_vk_buffer_destroy(bitnet_vk_context *c, bitnet_vk_buffer *buffer) {
    if (!buffer) return;
    c->vkDestroyBuffer(c->device, buffer->buffer, NULL);
    pthread_mutex_lock(&c->lock);
    memory_block *block = c->blocks + buffer->block;
    c->in_use -= buffer->size;
    if (--block->live == 0) {  // a block is returned when its last buffer goes
        c->vkFreeMemory(c->device, block->memory, NULL);
        block->memory = VK_NULL_HANDLE;
    }
    pthread_mutex_unlock(&c->lock);
    free(buffer);
}

void *bitnet_vk_buffer_mapped(bitnet_vk_buffer *buffer) { return buffer->mapped; }

// MARK: - Uploads

static bitnet_vk_status wait_staging(bitnet_vk_context *c, int i, char *error, int error_size) {
    if (!c->staging_pending[i]) return BITNET_VK_OK;
    CHECK(c->vkWaitForFences(c->device, 1, &c->staging_fences[i], VK_TRUE, UINT64_MAX), "waiting for an upload failed");
    CHECK(c->vkResetFences(c->device, 1, &c->staging_fences[i]), "vkResetFences failed");
    c->staging_pending[i] = 0;
    return BITNET_VK_OK;
}

bitnet_vk_status bitnet_vk_upload(bitnet_vk_context *c, bitnet_vk_buffer *buffer, uint64_t offset, const void *data, uint64_t size, char *error,
                                  int error_size) {
    if (buffer->mapped) {
        memcpy((char *)buffer->mapped + offset, data, size);
        return BITNET_VK_OK;
    }
    for (uint64_t done = 0; done < size;) {
        int i = c->staging_next;
        c->staging_next = (i + 1) % STAGING_BUFFERS;
        bitnet_vk_status status = wait_staging(c, i, error, error_size);
        if (status != BITNET_VK_OK) return status;
        if (!c->staging[i]) {
            status = bitnet_vk_buffer_create(c, STAGING_BYTES, BITNET_VK_MEMORY_HOST, &c->staging[i], error, error_size);
            if (status != BITNET_VK_OK) return status;
            if (!c->staging[i]->mapped) return fail(error, error_size, BITNET_VK_FAILED, "the staging buffer is not host-visible", VK_SUCCESS);
        }
        uint64_t chunk = size - done < STAGING_BYTES ? size - done : STAGING_BYTES;
        memcpy(c->staging[i]->mapped, (const char *)data + done, chunk);  // reading the file overlaps the other buffer's copy
        VkCommandBuffer commands = c->staging_commands[i];
        VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        CHECK(c->vkBeginCommandBuffer(commands, &begin), "vkBeginCommandBuffer failed");
        VkBufferCopy region = {.srcOffset = 0, .dstOffset = offset + done, .size = chunk};
        c->vkCmdCopyBuffer(commands, c->staging[i]->buffer, buffer->buffer, 1, &region);
        CHECK(c->vkEndCommandBuffer(commands), "vkEndCommandBuffer failed");
        VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &commands};
        pthread_mutex_lock(&c->lock);
        VkResult result = c->vkQueueSubmit(c->transfer_queue, 1, &submit, c->staging_fences[i]);
        pthread_mutex_unlock(&c->lock);
        CHECK(result, "submitting an upload failed");
        c->staging_pending[i] = 1;
        done += chunk;
    }
    return BITNET_VK_OK;
}

bitnet_vk_status bitnet_vk_upload_finish(bitnet_vk_context *c, char *error, int error_size) {
    for (int i = 0; i < STAGING_BUFFERS; i++) {
        bitnet_vk_status status = wait_staging(c, i, error, error_size);
        if (status != BITNET_VK_OK) return status;
    }
    return BITNET_VK_OK;
}

// MARK: - Pipelines

bitnet_vk_status bitnet_vk_pipeline_create(bitnet_vk_context *c, const uint32_t *code, size_t bytes, uint32_t local_size_x,
                                           bitnet_vk_pipeline **out, char *error, int error_size) {
    *out = NULL;
    VkShaderModuleCreateInfo module_info = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = bytes, .pCode = code};
    VkShaderModule module;
    CHECK(c->vkCreateShaderModule(c->device, &module_info, NULL, &module), "vkCreateShaderModule failed");
    VkSpecializationMapEntry entry = {.constantID = 0, .offset = 0, .size = sizeof(uint32_t)};
    VkSpecializationInfo specialization = {.mapEntryCount = 1, .pMapEntries = &entry, .dataSize = sizeof local_size_x, .pData = &local_size_x};
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = module,
                  .pName = "main", .pSpecializationInfo = &specialization},
        .layout = c->pipeline_layout};
    VkPipeline pipeline;
    VkResult result = c->vkCreateComputePipelines(c->device, VK_NULL_HANDLE, 1, &info, NULL, &pipeline);
    c->vkDestroyShaderModule(c->device, module, NULL);
    CHECK(result, "vkCreateComputePipelines failed");
    *out = malloc(sizeof **out);
    if (!*out) {
        c->vkDestroyPipeline(c->device, pipeline, NULL);
        return fail(error, error_size, BITNET_VK_OUT_OF_MEMORY, "out of host memory", VK_SUCCESS);
    }
    (*out)->pipeline = pipeline;
    return BITNET_VK_OK;
}

void bitnet_vk_pipeline_destroy(bitnet_vk_context *c, bitnet_vk_pipeline *pipeline) {
    if (!pipeline) return;
    c->vkDestroyPipeline(c->device, pipeline->pipeline, NULL);
    free(pipeline);
}

// MARK: - Streams

bitnet_vk_status bitnet_vk_stream_create(bitnet_vk_context *c, uint32_t max_sets, bitnet_vk_stream **out, char *error, int error_size) {
    *out = NULL;
    bitnet_vk_stream *s = calloc(1, sizeof *s);
    if (!s) return fail(error, error_size, BITNET_VK_OUT_OF_MEMORY, "out of host memory", VK_SUCCESS);
    *out = s;
    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = c->compute_family};
    VkCommandBufferAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                            .commandBufferCount = 1};
    VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkDescriptorPoolSize sizes = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = (max_sets ? max_sets : 1) * BITNET_VK_BINDINGS};
    VkDescriptorPoolCreateInfo descriptors = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = max_sets ? max_sets : 1,
                                              .poolSizeCount = 1, .pPoolSizes = &sizes};
    VkResult result;
    if ((result = c->vkCreateCommandPool(c->device, &pool, NULL, &s->pool)) != VK_SUCCESS ||
        (allocate.commandPool = s->pool, result = c->vkAllocateCommandBuffers(c->device, &allocate, &s->commands)) != VK_SUCCESS ||
        (result = c->vkCreateFence(c->device, &fence, NULL, &s->fence)) != VK_SUCCESS ||
        (result = c->vkCreateDescriptorPool(c->device, &descriptors, NULL, &s->descriptors)) != VK_SUCCESS) {
        bitnet_vk_stream_destroy(c, s);
        *out = NULL;
        return fail(error, error_size, status_of(result), "creating a command stream failed", result);
    }
    return BITNET_VK_OK;
}

void bitnet_vk_stream_destroy(bitnet_vk_context *c, bitnet_vk_stream *s) {
    if (!s) return;
    if (s->timestamps) c->vkDestroyQueryPool(c->device, s->timestamps, NULL);
    if (s->descriptors) c->vkDestroyDescriptorPool(c->device, s->descriptors, NULL);
    if (s->fence) c->vkDestroyFence(c->device, s->fence, NULL);
    if (s->pool) c->vkDestroyCommandPool(c->device, s->pool, NULL);
    free(s);
}

bitnet_vk_status bitnet_vk_stream_binding(bitnet_vk_context *c, bitnet_vk_stream *s, bitnet_vk_buffer *const *buffers, int count,
                                          bitnet_vk_binding *binding, char *error, int error_size) {
    VkDescriptorSetAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = s->descriptors,
                                            .descriptorSetCount = 1, .pSetLayouts = &c->set_layout};
    VkDescriptorSet set;
    CHECK(c->vkAllocateDescriptorSets(c->device, &allocate, &set), "vkAllocateDescriptorSets failed");
    VkDescriptorBufferInfo infos[BITNET_VK_BINDINGS];
    VkWriteDescriptorSet writes[BITNET_VK_BINDINGS];
    for (int i = 0; i < BITNET_VK_BINDINGS; i++) {
        bitnet_vk_buffer *buffer = i < count && buffers[i] ? buffers[i] : c->placeholder;
        infos[i] = (VkDescriptorBufferInfo){.buffer = buffer->buffer, .offset = 0, .range = VK_WHOLE_SIZE};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = (uint32_t)i,
                                           .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = infos + i};
    }
    c->vkUpdateDescriptorSets(c->device, BITNET_VK_BINDINGS, writes, 0, NULL);
    *binding = (bitnet_vk_binding)(uintptr_t)set;
    return BITNET_VK_OK;
}

bitnet_vk_status bitnet_vk_stream_begin(bitnet_vk_context *c, bitnet_vk_stream *s, char *error, int error_size) {
    CHECK(c->vkResetCommandBuffer(s->commands, 0), "vkResetCommandBuffer failed");
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};  // may be submitted again
    CHECK(c->vkBeginCommandBuffer(s->commands, &begin), "vkBeginCommandBuffer failed");
    if (s->timestamps) c->vkCmdResetQueryPool(s->commands, s->timestamps, 0, s->timestamp_capacity);
    s->timestamp_count = 0;
    return BITNET_VK_OK;
}

bitnet_vk_status bitnet_vk_stream_enable_timestamps(bitnet_vk_context *c, bitnet_vk_stream *s, uint32_t capacity, char *error, int error_size) {
    if (c->timestamp_bits == 0 || c->timestamp_period <= 0)
        return fail(error, error_size, BITNET_VK_UNAVAILABLE, "the device's compute queue writes no timestamps", VK_SUCCESS);
    if (s->timestamps) c->vkDestroyQueryPool(c->device, s->timestamps, NULL);
    s->timestamps = VK_NULL_HANDLE;
    VkQueryPoolCreateInfo info = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = capacity};
    CHECK(c->vkCreateQueryPool(c->device, &info, NULL, &s->timestamps), "vkCreateQueryPool failed");
    s->timestamp_capacity = capacity;
    return BITNET_VK_OK;
}

void bitnet_vk_stream_timestamp(bitnet_vk_context *c, bitnet_vk_stream *s) {
    if (!s->timestamps || s->timestamp_count >= s->timestamp_capacity) return;
    c->vkCmdWriteTimestamp(s->commands, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->timestamps, s->timestamp_count++);
}

int bitnet_vk_stream_timestamps(bitnet_vk_context *c, bitnet_vk_stream *s, double *nanoseconds, int capacity) {
    if (!s->timestamps || s->timestamp_count == 0) return 0;
    uint32_t count = s->timestamp_count < (uint32_t)capacity ? s->timestamp_count : (uint32_t)capacity;
    uint64_t ticks[count];
    if (c->vkGetQueryPoolResults(c->device, s->timestamps, 0, count, sizeof ticks, ticks, sizeof ticks[0],
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return -1;
    uint64_t mask = c->timestamp_bits >= 64 ? UINT64_MAX : (((uint64_t)1 << c->timestamp_bits) - 1);
    for (uint32_t i = 0; i < count; i++) nanoseconds[i] = (double)((ticks[i] - ticks[0]) & mask) * c->timestamp_period;
    return (int)count;
}

void bitnet_vk_stream_dispatch(bitnet_vk_context *c, bitnet_vk_stream *s, bitnet_vk_pipeline *pipeline, bitnet_vk_binding binding,
                               const void *push, uint32_t push_size, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z) {
    VkDescriptorSet set = (VkDescriptorSet)(uintptr_t)binding;
    c->vkCmdBindPipeline(s->commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
    c->vkCmdBindDescriptorSets(s->commands, VK_PIPELINE_BIND_POINT_COMPUTE, c->pipeline_layout, 0, 1, &set, 0, NULL);
    if (push_size) c->vkCmdPushConstants(s->commands, c->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    c->vkCmdDispatch(s->commands, groups_x, groups_y, groups_z);
}

void bitnet_vk_stream_barrier(bitnet_vk_context *c, bitnet_vk_stream *s) {
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    c->vkCmdPipelineBarrier(s->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
}

void bitnet_vk_stream_copy(bitnet_vk_context *c, bitnet_vk_stream *s, bitnet_vk_buffer *source, bitnet_vk_buffer *destination, uint64_t size) {
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
    c->vkCmdPipelineBarrier(s->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
    VkBufferCopy region = {.srcOffset = 0, .dstOffset = 0, .size = size};
    c->vkCmdCopyBuffer(s->commands, source->buffer, destination->buffer, 1, &region);
}

bitnet_vk_status bitnet_vk_stream_submit(bitnet_vk_context *c, bitnet_vk_stream *s, char *error, int error_size) {
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    c->vkCmdPipelineBarrier(s->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                            &barrier, 0, NULL, 0, NULL);
    CHECK(c->vkEndCommandBuffer(s->commands), "vkEndCommandBuffer failed");
    return bitnet_vk_stream_resubmit(c, s, error, error_size);
}

bitnet_vk_status bitnet_vk_stream_resubmit(bitnet_vk_context *c, bitnet_vk_stream *s, char *error, int error_size) {
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->commands};
    pthread_mutex_lock(&c->lock);
    VkResult result = c->vkQueueSubmit(c->compute_queue, 1, &submit, s->fence);
    pthread_mutex_unlock(&c->lock);
    CHECK(result, "submitting a forward pass failed");
    CHECK(c->vkWaitForFences(c->device, 1, &s->fence, VK_TRUE, UINT64_MAX), "waiting for a forward pass failed");
    CHECK(c->vkResetFences(c->device, 1, &s->fence), "vkResetFences failed");
    return BITNET_VK_OK;
}
