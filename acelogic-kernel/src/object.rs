//! The BPF object, built by `build.rs` (aya-build) and embedded in every
//! binary so a node needs no separate file.

/// Bytes of the BPF ELF object.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/acelogic"));

#[cfg(test)]
mod tests {
    use acelogic_common::names;

    use super::BPF_OBJECT;

    /// Userspace spells map, program and global names from
    /// `acelogic_common::names`; the BPF side names them by identifier.
    /// This ties the two together without loading anything.
    #[test]
    fn object_defines_every_shared_name() {
        let obj = aya_obj::Object::parse(BPF_OBJECT).expect("the embedded object parses");
        for map in names::ALL_MAPS {
            assert!(
                obj.maps.contains_key(map),
                "map {map} missing from the object"
            );
        }
        let programs = names::ALL_GATES
            .iter()
            .map(|g| g.program)
            .chain(names::ALL_LINEAGE);
        for program in programs {
            assert!(
                obj.programs.contains_key(program),
                "program {program} missing from the object; it has {:?}",
                obj.programs.keys().collect::<Vec<_>>()
            );
        }
        // Every program has its floor, and the floors are all there.
        let programs: Vec<&str> = names::ALL_GATES
            .iter()
            .map(|g| g.program)
            .chain(names::ALL_LINEAGE)
            .collect();
        let floored: Vec<&str> = names::FLOORS.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            {
                let mut p = programs.clone();
                p.sort_unstable();
                p
            },
            {
                let mut f = floored;
                f.sort_unstable();
                f
            },
            "every program and only they have a floor"
        );
        for (_, floor) in names::FLOORS {
            assert!(
                obj.programs.contains_key(floor),
                "floor {floor} missing from the object"
            );
        }
        // Data sections (`.rodata` holds the load-time globals) are maps
        // too; every other map must be listed.
        let named = obj.maps.keys().filter(|k| !k.starts_with('.')).count();
        assert_eq!(
            named,
            names::ALL_MAPS.len(),
            "unlisted maps: {:?}",
            obj.maps.keys()
        );
    }
}
