-- patch_compliance_within(7) as of now: was every instance patched this week?
CREATE OR REPLACE VIEW patch_compliance AS
SELECT * FROM patch_compliance_within(7);
