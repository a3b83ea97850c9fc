//! storemu: an emulated Storport port driver.
