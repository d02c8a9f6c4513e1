//! The province's own catalog items over a real server: a parent must be an
//! active item above the new one, a code is taken once, and the item joins
//! its parent's Project.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_proto::programs::v1 as pb;
use tonic::Code;

fn item(code: &str, parent: &str, level: pb::ItemLevel) -> pb::CreateProgrammeItemRequest {
    pb::CreateProgrammeItemRequest {
        item: Some(pb::ProgrammeItem {
            code: code.into(),
            parent_code: parent.into(),
            level: level as i32,
            name: format!("Hoạt động {code}"),
            owner_unit_code: "20".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn an_item_needs_a_parent_above_it_and_a_code_of_its_own() {
    let suite = Suite::start().await;
    let mut catalog = suite.catalog(Role::Admin, &["20"]).await;
    let made = catalog
        .create_programme_item(item("LS-2-BEES", "NTP-SPR.2", pb::ItemLevel::Activity))
        .await
        .expect("an activity under Project 2")
        .into_inner()
        .item
        .expect("item");
    assert_eq!(
        made.project_code, "NTP-SPR.2",
        "it joins its parent's Project"
    );

    let unknown = catalog
        .create_programme_item(item("LS-X", "NO-SUCH", pb::ItemLevel::Activity))
        .await
        .expect_err("no such parent");
    assert_eq!(violated_fields(&unknown), ["item.parent_code"]);

    let not_below = catalog
        .create_programme_item(item("LS-P", "NTP-SPR.2", pb::ItemLevel::Project))
        .await
        .expect_err("a project under a project");
    assert_eq!(violated_fields(&not_below), ["item.level"]);

    let again = catalog
        .create_programme_item(item("LS-2-BEES", "NTP-SPR.2", pb::ItemLevel::Activity))
        .await
        .expect_err("the code is taken");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(reason(&again), "CODE_TAKEN");

    let no_parent = catalog
        .create_programme_item(item("LS-Y", "", pb::ItemLevel::Activity))
        .await
        .expect_err("below programme level without a parent");
    assert_eq!(violated_fields(&no_parent), ["item.parent_code"]);
}
