//! Kernel state outlives its loader: maps pinned in bpffs keep the
//! governed scopes after the loading process let go of them.

use std::fs;

use acelogic_agent::kernel::Kernel;
use acelogic_common::{names, scope::ScopeEntry};
use anyhow::{Context as _, ensure};
use aya::maps::{HashMap, Map, MapData};

use crate::{fixtures::TestCgroup, harness::Case};

pub(crate) const CASES: &[Case] = &[Case {
    name: "pinned_scopes_survive_the_loader",
    needs: &[],
    run: pinned_scopes_survive_the_loader,
}];

fn pinned_scopes_survive_the_loader() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/acelogic-test-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| {
        let cg = TestCgroup::new("pinned")?;
        {
            let mut kernel = Kernel::load()?;
            kernel.govern(&cg.path, 9)?;
            kernel.pin_maps(&dir)?;
        } // The loader's handles are closed here.

        let data = MapData::from_pin(dir.join(names::MAP_SCOPES))?;
        let scopes: HashMap<MapData, u64, ScopeEntry> = HashMap::try_from(Map::HashMap(data))?;
        let entry = scopes
            .get(&cg.id, 0)
            .context("scope missing from the pinned map")?;
        ensure!(entry == ScopeEntry::new(9), "pinned entry {entry:?}");
        Ok(())
    })();
    for name in names::ALL_MAPS {
        let _ = fs::remove_file(dir.join(name));
    }
    let _ = fs::remove_dir(&dir);
    result
}
