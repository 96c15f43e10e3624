// `ordo fence install|sql`: fencing inside the user's own database. The work is in the fence
// module (fence_module.cc), which links the database client libraries.
#include "backend_loader.h"
#include "commands.h"

namespace ordo::cli {

int FenceCommand(const FenceOptions& options) { return RunFenceModule(options); }

}  // namespace ordo::cli
